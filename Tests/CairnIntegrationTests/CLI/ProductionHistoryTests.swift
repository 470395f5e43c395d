import CairnBase
import Foundation
import TestSupport
import Testing

/// Which timeline history is production's, on a real PostgreSQL 15: a promoted copy of the cluster archiving into
/// the same repository must never become the history a later restore, expire or report follows.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct ProductionHistoryTests {
    static func count(_ c: ScratchCluster, _ filter: String = "true") throws -> Int {
        Int(try c.psql("SELECT count(*) FROM t WHERE \(filter)")) ?? -1
    }

    static func now(_ c: ScratchCluster) throws -> String { try c.serverTime() }

    /// Restores `c`'s repository into a new folder beside it with `args` and starts the copy (its own port).
    static func sideCopy(
        _ c: ScratchCluster, _ name: String, _ args: [String]
    ) throws -> (ScratchCluster, ProcessResult) {
        let dir = c.dir + "/" + name
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let r = try c.cairn(["restore", "--target-dir", dir + "/data"] + args)
        guard r.status == 0 else { throw TestFailure("side restore failed (\(r.status)): \(r.stderr)") }
        let copy = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        try copy.start()
        try copy.waitUntilPromoted()
        return (copy, r)
    }

    /// Waits until `cairn timeline --json` shows `timeline` with `status`.
    static func awaitStatus(_ c: ScratchCluster, timeline: Int, _ status: String, timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            last = try c.cairn(["timeline", "--json"]).stdout
            let rows = (try? JSONSerialization.jsonObject(with: Data(last.utf8))) as? [[String: Any]] ?? []
            if rows.contains(where: { ($0["timeline"] as? Int) == timeline && ($0["status"] as? String) == status }) {
                return
            }
            usleep(500_000)
        }
        throw TestFailure("timeline \(timeline) is not \(status): \(last)")
    }

    /// The scenario of the data-safety review: production backed up, a side copy restored and started with
    /// archiving on while production runs; the copy promotes and archives timeline 2 into production's
    /// repository; production goes on. The disaster restore of production must come back with production's rows.
    @Test(arguments: RepoKind.standard)
    func aPromotedSideCopyNeverBecomesTheHistoryADisasterRestoreFollows(repo: RepoKind) throws {
        let c = try ScratchCluster(name: "lineage-\(repo)") { try TestRepository.config(repo, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'base' FROM generate_series(1, 100)")
        #expect(try c.cairn(["backup"]).status == 0)

        let (copy, _) = try Self.sideCopy(c, "side", ["--archive-mode", "preserve"])
        try copy.psql("INSERT INTO t (v) SELECT 'copy' FROM generate_series(1, 5)")
        try copy.switchAndWaitForArchive()
        try Self.awaitStatus(c, timeline: 2, "copy")
        copy.destroy()

        try c.psql("INSERT INTO t (v) SELECT 'production' FROM generate_series(1, 1000)")
        try c.switchAndWaitForArchive()
        let info = try c.cairn(["info", "--json"])
        #expect(
            info.stdout.contains("\"production_timeline\" : 1") || info.stdout.contains("\"production_timeline\":1"),
            "\(info.stdout)")

        let restored = try c.restoreAndStart(["--latest"])
        defer { restored.destroy() }
        #expect(try Self.count(restored) == 1100)
        #expect(try Self.count(restored, "v = 'copy'") == 0)
        #expect(try restored.psql("SELECT current_setting('recovery_target_timeline')") == "1")
    }

    /// When nothing can tell (production was down while the copy promoted), restores refuse and say why; the
    /// operator's word decides.
    @Test func aCopyNobodyCanPlaceMakesRestoresRefuseUntilTheOperatorDecides() throws {
        let c = try ScratchCluster(name: "lineage-undecided") {
            try TestRepository.config(.local, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'base' FROM generate_series(1, 100)")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO t (v) SELECT 'production' FROM generate_series(1, 1000)")
        try c.switchAndWaitForArchive()
        c.stop()

        let (copy, _) = try Self.sideCopy(c, "side", ["--archive-mode", "preserve"])
        try copy.psql("INSERT INTO t (v) SELECT 'copy' FROM generate_series(1, 5)")
        try copy.switchAndWaitForArchive()
        copy.destroy()
        try Self.awaitStatus(c, timeline: 2, "undecided")

        let target = c.dir + "/never"
        let refused = try c.cairn(["restore", "--target-dir", target, "--latest"])
        #expect(refused.status == ErrorCode.repoAmbiguousHistory.exitCode, "\(refused.stderr)")
        #expect(refused.stderr.contains("[repo.ambiguous-history]"))
        #expect(refused.stderr.contains("HINT:") && refused.stderr.contains("--target-timeline 1|2"))
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try c.cairn(["timeline"]).stdout.contains("AMBIGUOUS"))
        #expect(try c.cairn(["restore", "--target-timeline", "1", "--dry-run"]).status == 0)

        let marked = try c.cairn(["timeline", "mark-copy", "2", "--reason", "the reporting copy"])
        #expect(marked.status == 0, "\(marked.stderr)")
        let restored = try c.restoreAndStart(["--latest"])
        defer { restored.destroy() }
        #expect(try Self.count(restored) == 1100)
    }

    /// A side restore does not archive into production's repository unless asked to.
    @Test func aSideRestoreTurnsArchivingOff() throws {
        let c = try ScratchCluster(name: "lineage-side") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        #expect(try c.cairn(["backup"]).status == 0)
        let (copy, r) = try Self.sideCopy(c, "side", [])
        defer { copy.destroy() }
        #expect(r.stdout.contains("archiving off in the restored cluster"), "\(r.stdout)")
        #expect(try copy.psql("SHOW archive_mode") == "off")
        try copy.psql("INSERT INTO t (v) VALUES ('copy')")
        _ = try copy.psql("SELECT pg_switch_wal()")
        usleep(2_000_000)
        let timeline2 = (try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/repo/wal/00000002")) ?? []
        #expect(timeline2.isEmpty, "the copy archived \(timeline2)")
    }

    /// Production restored in place to an earlier time forks timeline 2 there; a later restore to a time between
    /// that fork and the restore must show production as it was then (timeline 1), not the fork's state.
    @Test func aTimeBetweenAForkAndTheNewTimelinesStartIsRecoveredAsItWas() throws {
        let c = try ScratchCluster(name: "lineage-time") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'a' FROM generate_series(1, 100)")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO t (v) SELECT 'b' FROM generate_series(1, 100)")
        usleep(1_200_000)
        let fork = try Self.now(c)
        usleep(1_200_000)
        try c.psql("INSERT INTO t (v) SELECT 'c' FROM generate_series(1, 100)")
        usleep(1_200_000)
        let between = try Self.now(c)
        usleep(1_200_000)
        try c.psql("INSERT INTO t (v) SELECT 'd' FROM generate_series(1, 100)")
        try c.switchAndWaitForArchive()
        c.stop()

        // Production is restored to `fork` and goes on as timeline 2.
        let (p2, _) = try Self.sideCopy(c, "p2", ["--target-time", fork, "--archive-mode", "preserve"])
        defer { p2.destroy() }
        #expect(try Self.count(p2) == 200)
        try p2.psql("INSERT INTO t (v) SELECT 'e' FROM generate_series(1, 50)")
        try p2.switchAndWaitForArchive()
        #expect(
            try c.cairn(["timeline", "adopt", "2", "--reason", "production restored to before the mistake"]).status == 0
        )

        let then = try c.restoreAndStart(["--target-time", between])
        defer { then.destroy() }
        #expect(try Self.count(then) == 300, "production at that time: a, b and c")
        #expect(try Self.count(then, "v = 'c'") == 100)

        let explicit = try c.cairn([
            "restore", "--target-dir", c.dir + "/never", "--target-time", between, "--target-timeline", "2"
        ])
        #expect(explicit.status == ErrorCode.restoreTarget.exitCode, "\(explicit.stderr)")
        #expect(explicit.stderr.contains("before timeline 2 began"))

        let latest = try c.restoreAndStart(["--latest"])
        defer { latest.destroy() }
        #expect(try Self.count(latest) == 250)
    }
}
