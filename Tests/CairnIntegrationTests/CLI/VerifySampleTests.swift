import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCLI

/// A repository configuration the verify sample runs against: extra `cairn.yaml` lines on top of a local
/// repository (an encrypted variant only needs its own lines here).
struct SampleRepository: Sendable, CustomTestStringConvertible {
    var name: String
    var limits: [String] = []
    var extra: String = ""
    /// The master key (base64) of an encrypted repository.
    var masterKey: String?
    var testDescription: String { name }

    static let local = SampleRepository(name: "local")
    static let encrypted = SampleRepository(
        name: "encrypted", masterKey: Data(MasterKey.generate()).base64EncodedString())
}

/// `cairn verify` finds every single-bit flip and every truncation in a sample of ≥ 100 stored objects (bundles,
/// manifests, PostgreSQL backup manifests, WAL segments and backup-history files of a real cluster, and
/// `cairn.json` with its twin): each object is damaged in place, verify must name exactly that object, then the
/// object is put back. Most checks call the verify operation in-process (an incremental run reads only the
/// damaged object); every tenth object is checked with the `cairn verify` command as well.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct VerifySampleTests {
    @Test(arguments: [SampleRepository.local, .encrypted])
    func everyFlipAndTruncationIsFound(_ variant: SampleRepository) throws {
        let seed = TestEnvironment.env["CAIRN_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max >> 1)
        print("verify sample (\(variant.name)): seed \(seed) (set CAIRN_TEST_SEED=\(seed) to repeat)")
        let started = Date()
        let c = try ScratchCluster(name: "verifysample-\(variant.name)") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1, limits: ["bundle_size: 1MiB"] + variant.limits, extra: variant.extra,
                masterKey: variant.masterKey)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 1 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        for _ in 0..<2 {
            let b = try c.cairn(["backup"])
            #expect(b.status == 0, "\(b.stderr)")
            try c.psql("CREATE TABLE IF NOT EXISTS s (i int)")
            try c.psql(
                Array(repeating: "INSERT INTO s VALUES (1); SELECT pg_switch_wal();", count: 25).joined(separator: " "))
        }
        try c.switchAndWaitForArchive()
        c.stop()
        let setup = Date().timeIntervalSince(started)

        let repoPath = c.dir + "/repo"
        let pristine = c.dir + "/pristine"
        try Run.shell("cp -a \(repoPath) \(pristine)")
        let config = try ConfigLoader(environment: [:]).load(path: c.config!)
        let ctx = AppContext(config: config, environment: [:])
        let repo = try ctx.makeRepository()
        let keys = try Run.shell("cd \(repoPath) && find backups wal cairn.json cairn.json.copy -type f | sort").stdout
            .split(separator: "\n").map(String.init)
        #expect(keys.count >= 100, "the sample has \(keys.count) objects")

        func verify() throws -> [VerifyOperation.Problem] {
            try VerifyOperation.run(
                repo: repo, pipeline: ctx.makePipeline(), full: false, parallelism: 2, clock: SystemClock()
            ).problems
        }
        let baseline = try VerifyOperation.run(
            repo: repo, pipeline: ctx.makePipeline(), full: true, parallelism: 2, clock: SystemClock())
        #expect(baseline.problems.isEmpty, "the undamaged repository: \(baseline.problems)")

        var rng = SeededGenerator(seed: seed)
        var counts = (flips: 0, flipsFound: 0, truncations: 0, truncationsFound: 0, cli: 0)
        var missed: [String] = []
        for (i, key) in keys.enumerated() {
            let path = repoPath + "/" + key
            let size = try Damage.size(path)
            let bit = Int(rng.next() % UInt64(size * 8))
            let length = Int(rng.next() % UInt64(size))
            for (kind, damage) in [
                ("flip bit \(bit)", { try Damage.flipBit(path, bit: bit) }),
                ("truncate to \(length) of \(size) bytes", { try Damage.truncate(path, to: length) })
            ] {
                try damage()
                // A later modification time, as any rewrite would give, so the incremental run reads it again.
                try FileManager.default.setAttributes(
                    [.modificationDate: Date().addingTimeInterval(3600)], ofItemAtPath: path)
                let errors = try verify().filter { $0.severity == .error }
                let found = errors.count == 1 && errors[0].subject == key && errors[0].kind.hasPrefix("damaged")
                if kind.hasPrefix("flip") {
                    counts.flips += 1
                    counts.flipsFound += found ? 1 : 0
                } else {
                    counts.truncations += 1
                    counts.truncationsFound += found ? 1 : 0
                }
                if !found { missed.append("\(key) (\(kind)): \(errors)") }
                if i % 10 == 0 {
                    counts.cli += 1
                    try FileManager.default.setAttributes(
                        [.modificationDate: Date().addingTimeInterval(7200)], ofItemAtPath: path)
                    let r = try Run.cairn(["verify", "--config", c.config!, "--json"])
                    #expect(
                        r.status == ErrorCode.dataCorrupt.exitCode,
                        "cairn verify, \(key) (\(kind)): exit \(r.status)\n\(r.stderr)")
                    #expect(
                        r.stdout.contains("\"subject\" : \"\(key)\""),
                        "cairn verify does not name \(key) (\(kind))\n\(r.stdout)")
                    #expect(r.stderr.contains("[data.corrupt]"), "\(r.stderr)")
                }
                try Run.shell("cp -p \(pristine)/\(key) \(path)")
            }
        }
        #expect(
            missed.isEmpty,
            "verify missed \(missed.count) damaged object(s), seed \(seed):\n\(missed.joined(separator: "\n"))")
        let after = try VerifyOperation.run(
            repo: repo, pipeline: ctx.makePipeline(), full: true, parallelism: 2, clock: SystemClock())
        #expect(after.problems.isEmpty, "the repository after putting every object back: \(after.problems)")

        let kinds = Dictionary(grouping: keys) { k in
            k.hasPrefix("wal/")
                ? (k.contains(".backup") ? "backup-history" : "wal")
                : k.hasSuffix("manifest.json")
                    ? "manifest"
                    : k.hasSuffix("backup_manifest.zst")
                        ? "pg-manifest" : k.hasPrefix("cairn.json") ? "cairn.json" : "bundle"
        }.mapValues(\.count).sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        Measurements.record([
            "verify bit-flip sample (\(variant.name), seed \(seed)): \(keys.count) objects (\(kinds)); "
                + "\(counts.flipsFound)/\(counts.flips) single-bit flips and \(counts.truncationsFound)/\(counts.truncations) truncations "
                + "detected, each naming exactly the damaged object; \(counts.cli * 1) damages also checked with the cairn verify command; "
                + String(format: "setup %.1fs, sample %.1fs", setup, Date().timeIntervalSince(started) - setup)
        ])
    }
}
