import CairnBase
import Foundation
import TestSupport
import Testing

/// Programs that match the server (issue #18): programs of another major are refused before anything runs, with
/// both majors and the fix; without `cluster.bin_directory` the programs are found by the major.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct PostgresVersionTests {
    /// Points `cluster.bin_directory` of `c`'s configuration at `bin` (nil: removes the line).
    static func setBinDirectory(_ c: ScratchCluster, _ bin: String?) throws {
        let lines = try String(contentsOfFile: c.config!, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false)
        let changed = lines.compactMap { line -> String? in
            guard line.hasPrefix("  bin_directory:") else { return String(line) }
            return bin.map { "  bin_directory: \($0)" }
        }
        try changed.joined(separator: "\n").write(toFile: c.config!, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(c.config!)")
    }

    @Test(.enabled(if: PGMajor.tested.contains(.v18)))
    func programsOfAnotherMajorAreRefusedBeforeAnythingRuns() throws {
        let c = try ScratchCluster(name: "mismatch", major: .v18) { dir, conninfo in
            try Run.shell("mkdir -p \(dir)/drills && chown postgres \(dir)/drills")
            return try TestRepository.config(
                .local, dir: dir, conninfo: conninfo, major: .v18,
                extra: "drills:\n  target: end\n  scratch_directory: \(dir)/drills\n")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
        #expect(try c.cairn(["backup"]).status == 0)  // physical backups run no programs
        try c.switchAndWaitForArchive()
        let good = try c.cairn(["check"])
        #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
        #expect(
            good.stdout.contains("programs       ok   PostgreSQL 18's programs in \(PGMajor.v18.bin)"), "\(good.stdout)"
        )

        // The 18 cluster's configuration names PostgreSQL 15's programs.
        try Self.setBinDirectory(c, PGMajor.v15.bin)
        let check = try c.cairn(["check"])
        #expect(check.status == ErrorCode.pgVersion.exitCode, "\(check.stdout)\(check.stderr)")
        // check's first failure is the error line (stderr); its row points there.
        #expect(check.stdout.contains("programs       FAIL see the error below [pg.version]"), "\(check.stdout)")
        #expect(check.stderr.contains("is PostgreSQL 15 but the cluster is PostgreSQL 18"), "\(check.stderr)")
        #expect(
            check.stderr.contains("HINT: point cluster.bin_directory at PostgreSQL 18's programs"), "\(check.stderr)")
        let logical = try c.cairn(["backup", "--type", "logical"])
        #expect(logical.status == ErrorCode.pgVersion.exitCode, "\(logical.stderr)")
        #expect(
            logical.stderr.contains("pg_dump in \(PGMajor.v15.bin) is PostgreSQL 15 but the cluster is PostgreSQL 18"),
            "\(logical.stderr)")
        #expect(!(try c.cairn(["list"]).stdout.contains("logical")), "nothing was dumped")
        let drill = try c.cairn(["drill"])
        #expect(drill.status == ErrorCode.pgVersion.exitCode, "\(drill.stdout)\(drill.stderr)")
        #expect(
            drill.stderr.contains("is PostgreSQL 15 but backup ") && drill.stderr.contains("is PostgreSQL 18"),
            "\(drill.stderr)")
        #expect(
            ((try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/drills")) ?? []).isEmpty,
            "no scratch cluster was made")

        // Not configured: looked up by the major, which is not where Debian keeps its programs here; the error says so.
        try Self.setBinDirectory(c, nil)
        let unset = try c.cairn(["check"])
        #expect(unset.status == ErrorCode.pgVersion.exitCode, "\(unset.stdout)")
        #expect(
            unset.stderr.contains("PostgreSQL 18") && unset.stderr.contains("cluster.bin_directory"), "\(unset.stderr)")
    }

    @Test func withoutBinDirectoryTheProgramsAreFoundByTheMajor() throws {
        let c = try ScratchCluster(name: "nobindir") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        try Self.setBinDirectory(c, nil)
        #expect(try c.cairn(["init"]).status == 0)
        let check = try c.cairn(["check"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(
            check.stdout.contains(
                "programs       ok   PostgreSQL 15's programs in /usr/lib/postgresql/15/bin (found by the major)"),
            "\(check.stdout)")
        let b = try c.cairn(["backup", "--type", "logical", "--database", "postgres"])
        #expect(b.status == 0, "\(b.stderr)")
    }
}
