import CairnBase
import Foundation
import TestSupport
import Testing

/// `restore` on a host where the backed-up cluster still runs, and over settings left by earlier restores or
/// operators, on a real PostgreSQL 15.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct RestoreGuardTests {
    /// Every file under `dir` with its size, sorted.
    static func tree(_ dir: String) throws -> [String] {
        try Run.shell("cd \(dir) && find . -type f -printf '%p %s\\n' | sort").stdout.split(separator: "\n").map(
            String.init)
    }

    @Test func forceNeverEmptiesTheTablespaceOfARunningCluster() throws {
        let c = try ScratchCluster(name: "live-ts") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let ts = c.dir + "/ts"
        try Run.shell("mkdir -p \(ts) && chown postgres:postgres \(ts) && chmod 700 \(ts)")
        try c.psql("CREATE TABLESPACE live LOCATION '\(ts)'")
        try c.psql("CREATE TABLE t (id int, v text) TABLESPACE live")
        try c.psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
        let oid = try c.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'live'")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        try c.psql("CHECKPOINT")
        let before = try Self.tree(ts)
        #expect(before.contains { $0.contains("PG_15_") })

        // The data directory is new and the tablespace defaults to its original location, the live one: refused
        // before anything is deleted (the marker in the non-empty main target survives too).
        let target = c.dir + "/restore/data"
        try Run.shell("mkdir -p \(target) && touch \(target)/marker && chown -R postgres:postgres \(c.dir)/restore")
        let r = try c.cairn(["restore", "--target-dir", target, "--force", "--archive-mode", "off"])
        #expect(r.status == ErrorCode.restoreDirNotEmpty.exitCode, "\(r.stdout)\(r.stderr)")
        let pid = try String(contentsOfFile: c.data + "/postmaster.pid", encoding: .utf8).split(separator: "\n")[0]
        let data = (c.data as NSString).resolvingSymlinksInPath
        #expect(r.stderr.contains("pid \(pid)") && r.stderr.contains(data), "\(r.stderr)")
        #expect(r.stderr.contains("HINT:") && r.stderr.contains("--tablespace-map"), "\(r.stderr)")
        #expect(try Self.tree(ts) == before)
        #expect(FileManager.default.fileExists(atPath: target + "/marker"))
        #expect(try c.psql("SELECT count(*) FROM t") == "5000")
        c.stop()
        try c.start()
        #expect(try c.psql("SELECT count(*), sum(length(v)) FROM t") == "5000|160000", "the live tablespace is intact")

        // Mapped elsewhere, the restore goes ahead and the copy reads the table from its own tablespace.
        let moved = c.dir + "/restore/ts"
        let ok = try c.cairn([
            "restore", "--target-dir", target, "--force", "--archive-mode", "off", "--tablespace-map", "\(oid)=\(moved)"
        ])
        #expect(ok.status == 0, "\(ok.stderr)")
        let restored = try ScratchCluster(restoredAt: target, dir: c.dir + "/restore", config: c.config)
        defer { restored.stop() }
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(try restored.psql("SELECT count(*) FROM t") == "5000")
        #expect(try restored.psql("SELECT pg_tablespace_location(\(oid))") == moved)
        #expect(try Self.tree(ts) == before)
    }

    /// Issue #26: one run names every problem: the target is not empty and there is no backup.
    @Test func aRestoreReportsEveryProblemAtOnce() throws {
        let c = try ScratchCluster(name: "restore-problems") {
            try TestRepository.config(.local, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let target = c.dir + "/restore/data"
        try Run.shell("mkdir -p \(target) && touch \(target)/marker && chown -R postgres:postgres \(c.dir)/restore")
        let r = try c.cairn(["restore", "--target-dir", target])
        #expect(r.status == ErrorCode.restoreDirNotEmpty.exitCode, "\(r.stdout)\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(
            lines.first == "cairn: error: 2 problems stop the restore; nothing was written [restore.dir-not-empty]",
            "\(r.stderr)")
        #expect(lines.contains { $0.contains("\(target) is not empty") }, "\(r.stderr)")
        #expect(lines.contains { $0.contains("[backup.not-found]") }, "\(r.stderr)")
        #expect(lines.last?.hasPrefix("HINT: ") == true)
        #expect(FileManager.default.fileExists(atPath: target + "/marker"))
    }

    static func blocks(_ dir: String) throws -> Int {
        try String(contentsOfFile: dir + "/postgresql.auto.conf", encoding: .utf8)
            .components(separatedBy: "# BEGIN recovery settings of cairn restore").count - 1
    }

    @Test func aRecoveryTargetLeftInAutoConfDoesNotChangeTheRestore() throws {
        let c = try ScratchCluster(name: "autoconf") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'base-' || g FROM generate_series(1, 1000) g")
        // An operator's leftover: PostgreSQL refuses two recovery targets, and would stop at this one.
        try c.psql("ALTER SYSTEM SET recovery_target_name = 'stale'")
        try c.psql("SELECT pg_reload_conf()")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("SELECT pg_create_restore_point('stale')")
        try c.psql("INSERT INTO t (v) SELECT 'a-' || g FROM generate_series(1, 100) g")
        let expected = try PointInTimeRestoreTests.tableDigest(c)
        let target = try c.timeTargetBetweenCommits()
        try c.psql("INSERT INTO t (v) SELECT 'b-' || g FROM generate_series(1, 100) g")
        try c.switchAndWaitForArchive()

        let dir = c.dir + "/r"
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let r = try c.cairn(["restore", "--target-dir", dir + "/data", "--archive-mode", "off", "--target-time", target]
        )
        #expect(r.status == 0, "\(r.stderr)")
        let conf = try String(contentsOfFile: dir + "/data/postgresql.auto.conf", encoding: .utf8)
        #expect(conf.contains("# removed by cairn restore: recovery_target_name = 'stale'"), "\(conf)")
        #expect(try Self.blocks(dir + "/data") == 1)
        let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(try PointInTimeRestoreTests.tableDigest(restored) == expected, "stopped at the requested time")
        restored.stop()

        // Again over the same directory: still one block.
        let again = try c.cairn([
            "restore", "--target-dir", dir + "/data", "--archive-mode", "off", "--force", "--target-time", target
        ])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try Self.blocks(dir + "/data") == 1)
    }
}
