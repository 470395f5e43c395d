import CairnBase
import Foundation
import TestSupport
import Testing

/// Backups, WAL archiving and restores on real PostgreSQL 15 and 18 clusters, against the local folder and the S3
/// emulator (TLS, SigV4 enforced): what `cairn backup` / `cairn restore` promise, checked on the data.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct PointInTimeRestoreTests {
    /// A digest of a table's contents, to compare a restore with the source at a point in time.
    static func tableDigest(_ c: ScratchCluster, _ table: String = "t") throws -> String {
        try c.psql(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(id::text || '/' || v, ',' ORDER BY id)), '') FROM \(table)"
        )
    }

    @Test(arguments: PGMajor.matrix(RepoKind.standard, others: [.s3]))
    func backupUnderLoadThenRestoreToATimeBetweenTwoCommits(repo: RepoKind, major: PGMajor) throws {
        let c = try ScratchCluster(name: "pitr-\(repo)-\(major)", major: major) {
            try TestRepository.config(repo, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql(
            "CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL, at timestamptz DEFAULT clock_timestamp())")
        try c.psql("INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, 20000) g")

        // Concurrent write load (pgbench with a custom insert script) while the backup runs.
        let script = c.dir + "/load.sql"
        try "INSERT INTO t (v) VALUES (md5(random()::text));\n".write(toFile: script, atomically: true, encoding: .utf8)
        try Run.shell("chmod 644 \(script)")
        let load = Thread {
            _ = try? Run.shell(
                "runuser -u postgres -- \(c.bin)/pgbench -n -h \(c.socketDir) -p \(c.port) -U postgres -c 2 -T 6 -f \(script) postgres >/dev/null 2>&1",
                check: false)
        }
        load.start()
        usleep(1_000_000)
        let backup = try c.cairn(["backup", "--json"])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(backup.stdout.contains("\"id\""))
        while !load.isFinished { usleep(100_000) }

        // More transactions: batch A, then the target time, then batch B.
        try c.psql("INSERT INTO t (v) SELECT 'batch-a-' || g FROM generate_series(1, 500) g")
        let expected = try Self.tableDigest(c)
        let target = try c.timeTargetBetweenCommits()
        try c.psql("INSERT INTO t (v) SELECT 'batch-b-' || g FROM generate_series(1, 500) g")
        let latest = try Self.tableDigest(c)
        try c.switchAndWaitForArchive()

        let restored = try c.restoreAndStart(["--target-time", target])
        defer { restored.destroy() }
        #expect(try Self.tableDigest(restored) == expected)
        #expect(try restored.psql("SELECT count(*) FROM t WHERE v LIKE 'batch-b-%'") == "0")
        #expect(try restored.psql("SELECT count(*) FROM t WHERE v LIKE 'batch-a-%'") == "500")
        #expect(expected != latest)

        // The catalog shows the backup and a window that covers the target.
        let list = try c.cairn(["list"])
        #expect(list.stdout.contains("full"))
        let info = try c.cairn(["info", "--json"])
        #expect(info.status == 0)
        #expect(info.stdout.contains("\"recoverable_window\""))
    }

    @Test(arguments: PGMajor.matrix(RepoKind.standard))
    func immediateLsnRestorePointAndLatest(repo: RepoKind, major: PGMajor) throws {
        let c = try ScratchCluster(name: "targets-\(repo)-\(major)", major: major) {
            try TestRepository.config(repo, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'base-' || g FROM generate_series(1, 1000) g")
        let atBackup = try Self.tableDigest(c)
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO t (v) SELECT 'a-' || g FROM generate_series(1, 100) g")
        let afterA = try Self.tableDigest(c)
        try c.psql("SELECT pg_create_restore_point('before_b')")
        try c.psql("INSERT INTO t (v) SELECT 'b-' || g FROM generate_series(1, 100) g")
        let afterB = try Self.tableDigest(c)
        let lsnB = try c.psql("SELECT pg_current_wal_lsn()")
        try c.psql("INSERT INTO t (v) SELECT 'c-' || g FROM generate_series(1, 100) g")
        let afterC = try Self.tableDigest(c)
        try c.switchAndWaitForArchive()

        for (args, expected) in [
            (["--immediate"], atBackup), (["--target-name", "before_b"], afterA),
            (["--target-lsn", lsnB], afterB), (["--latest"], afterC)
        ] {
            let r = try c.restoreAndStart(args)
            #expect(try Self.tableDigest(r) == expected, "restore \(args)")
            r.destroy()
        }

        // The dry run writes nothing and shows the plan.
        let target = c.dir + "/dry"
        let dry = try c.cairn(["restore", "--target-dir", target, "--immediate", "--dry-run"])
        #expect(dry.status == 0)
        #expect(dry.stdout.contains("would restore backup"))
        #expect(dry.stdout.contains("recovery_target = 'immediate'"))
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    /// Issue #18's acceptance case: a table dropped by mistake comes back, with exactly the rows committed before
    /// the target time, and what happened after the target (the drop, later rows) does not.
    @Test(arguments: PGMajor.tested)
    func aDroppedTableComesBackWithExactlyTheRowsCommittedBeforeTheTarget(major: PGMajor) throws {
        let c = try ScratchCluster(name: "dropped-\(major)", major: major) {
            try TestRepository.config(.local, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.psql("SHOW server_version_num").hasPrefix(String(major.rawValue)))
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL)")
        try c.psql("CREATE TABLE keep (id int)")
        try c.psql("INSERT INTO t (v) SELECT 'before-backup-' || g FROM generate_series(1, 3000) g")
        #expect(try c.cairn(["backup"]).status == 0)
        // Commits after the backup, each its own transaction: all of them precede the target.
        for i in 1...5 {
            try c.psql("INSERT INTO t (v) SELECT 'after-backup-\(i)-' || g FROM generate_series(1, 100) g")
        }
        let expected = try Self.tableDigest(c)
        let target = try c.timeTargetBetweenCommits()
        try c.psql("INSERT INTO t (v) VALUES ('after-target')")
        try c.psql("INSERT INTO keep VALUES (1)")
        try c.psql("DROP TABLE t")
        try c.switchAndWaitForArchive()

        let restored = try c.restoreAndStart(["--target-time", target])
        defer { restored.destroy() }
        #expect(try restored.psql("SHOW server_version_num").hasPrefix(String(major.rawValue)))
        #expect(try Self.tableDigest(restored) == expected)
        #expect(try restored.psql("SELECT count(*) FROM t") == "3500")
        #expect(try restored.psql("SELECT count(*) FROM t WHERE v = 'after-target'") == "0")
        #expect(try restored.psql("SELECT count(*) FROM keep") == "0", "nothing committed after the target")
    }

    /// The backup's own WAL (what recovery needs to become consistent) is in the restored directory's prefetch
    /// spool before PostgreSQL starts, checked records beside it, and recovery serves it from there.
    @Test(arguments: RepoKind.standard)
    func theBackupsOwnWALIsFetchedBeforePostgreSQLStarts(repo: RepoKind) throws {
        let c = try ScratchCluster(name: "warm-spool-\(repo)") {
            try TestRepository.config(repo, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL)")
        try c.psql("INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, 20000) g")
        let b = try c.cairn(["backup", "--json"])
        #expect(b.status == 0, "\(b.stderr)")
        let expected = try Self.tableDigest(c)
        try c.switchAndWaitForArchive()
        let dir = c.dir + "/warm"
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let r = try c.cairn(["restore", "--target-dir", dir + "/data", "--archive-mode", "off", "--immediate"])
        #expect(r.status == 0, "\(r.stderr)")
        let spooled = try Run.shell("ls \(dir)/data/pg_wal/cairn-prefetch").stdout.split(separator: "\n").map(
            String.init)
        let summary = try JSONSerialization.jsonObject(with: Data(b.stdout.utf8)) as? [String: Any]
        let segment = summary?["start_wal"] as? String
        #expect(segment.map { spooled.contains($0) } == true, "spool: \(spooled), backup: \(b.stdout)")
        let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { restored.destroy() }
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(try Self.tableDigest(restored) == expected)
    }

    @Test func restoreAfterATimelineSwitch() throws {
        let a = try ScratchCluster(name: "timeline") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { a.destroy() }
        #expect(try a.cairn(["init"]).status == 0)
        try a.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text)")
        try a.psql("INSERT INTO t (v) SELECT 'tl1-' || g FROM generate_series(1, 1000) g")
        #expect(try a.cairn(["backup"]).status == 0)
        try a.psql("INSERT INTO t (v) SELECT 'tl1-late-' || g FROM generate_series(1, 10) g")
        try a.switchAndWaitForArchive()
        a.stop()  // the old primary is gone

        // Restore and promote with archiving on: the new primary archives timeline 2 into the same repository.
        let bDir = a.dir + "/b"
        try Run.shell("mkdir -p \(bDir) && chown postgres:postgres \(bDir)")
        let r = try a.cairn(["restore", "--target-dir", bDir + "/data", "--archive-mode", "preserve"])
        #expect(r.status == 0, "\(r.stderr)")
        let b = try ScratchCluster(restoredAt: bDir + "/data", dir: bDir, config: a.config)
        defer { b.destroy() }
        try b.start()
        try b.waitUntilPromoted()
        #expect(try b.psql("SELECT timeline_id FROM pg_control_checkpoint()") == "2")
        // cairn now talks to the new primary.
        let conf = try String(contentsOfFile: a.config!, encoding: .utf8)
            .replacingOccurrences(of: a.conninfo, with: b.conninfo)
        try conf.write(toFile: a.config!, atomically: true, encoding: .utf8)
        try b.psql("INSERT INTO t (v) SELECT 'tl2-' || g FROM generate_series(1, 100) g")
        let second = try b.cairn(["backup", "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        try b.psql("INSERT INTO t (v) SELECT 'tl2-late-' || g FROM generate_series(1, 100) g")
        let expected = try Self.tableDigest(b)
        let lsn = try b.psql("SELECT pg_current_wal_lsn()")
        try b.psql("INSERT INTO t (v) VALUES ('after-target')")
        try b.switchAndWaitForArchive()

        let info = try b.cairn(["info"])
        #expect(info.stdout.contains("timeline 2"))
        #expect(info.stdout.contains("branched from timeline 1"))

        // A point on timeline 2, from the newest backup and from the first backup (across the switch).
        let first = try b.cairn(["list", "--json"]).stdout
        let firstId = try #require(
            first.split(separator: "\"").dropFirst().first { $0.hasSuffix("F") }.map(String.init))
        for extra in [[], ["--backup", firstId]] {
            let r2 = try b.restoreAndStart(["--target-lsn", lsn] + extra)
            #expect(try Self.tableDigest(r2) == expected, "restore \(extra)")
            #expect(try r2.psql("SELECT count(*) FROM t WHERE v = 'after-target'") == "0")
            r2.destroy()
        }
    }

    @Test func targetsOutsideTheWindowAreRefusedBeforeWriting() throws {
        let c = try ScratchCluster(name: "window") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id int)")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        let target = c.dir + "/never"
        for t in ["2000-01-01 00:00:00+00", "2099-01-01 00:00:00+00"] {
            let r = try c.cairn(["restore", "--target-dir", target, "--target-time", t])
            #expect(r.status == ErrorCode.restoreTarget.exitCode, "\(t): \(r.stderr)")
            #expect(r.stderr.contains("recoverable window"))
            #expect(r.stderr.contains("HINT:"))
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        // Two targets at once is a usage error.
        let two = try c.cairn(["restore", "--target-dir", target, "--immediate", "--latest"])
        #expect(two.status == ErrorCode.usage.exitCode)
        // A non-empty directory is refused.
        try Run.shell("mkdir -p \(target) && touch \(target)/x && chown -R postgres \(target)")
        let busy = try c.cairn(["restore", "--target-dir", target])
        #expect(busy.status == ErrorCode.restoreDirNotEmpty.exitCode)
        #expect(busy.stderr.contains("--force"))
    }
}
