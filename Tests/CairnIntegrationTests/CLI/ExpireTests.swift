import CairnBase
import CairnCore
import CairnStorage
import Foundation
import Synchronization
import TestSupport
import Testing

/// `cairn expire`, `pin` and `unpin` on a real cluster and repository.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct ExpireTests {
    static func repository(_ c: ScratchCluster) throws -> any Repository {
        let text = try String(contentsOfFile: c.config!, encoding: .utf8)
        if let prefix = text.split(separator: "\n").first(where: { $0.contains("prefix:") })?.split(separator: ":").last
        {
            return S3Repository(
                settings: TestEnvironment.s3Settings(prefix: prefix.trimmingCharacters(in: .whitespaces), tls: false))
        }
        return LocalRepository(root: c.dir + "/repo")
    }

    @Test(arguments: PGMajor.tested)
    func afterExpireTheWindowStartIsStillRestorableAndExpiredObjectsAreGone(major: PGMajor) throws {
        let c = try ScratchCluster(name: "expire-s3-\(major)", major: major) {
            try TestRepository.config(
                .s3, dir: $0, conninfo: $1, major: major,
                extra: "retention:\n  recovery_window: 20s\n  min_full_backups: 1\n  orphan_safety_age: 1m")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id serial, v text, at timestamptz DEFAULT clock_timestamp())")
        let b1 = try c.cairn(["backup", "--json"])
        #expect(b1.status == 0, "\(b1.stderr)")
        try c.psql("INSERT INTO t (v) SELECT 'before-b2' FROM generate_series(1, 100)")
        try c.switchAndWaitForArchive()
        let b2 = try c.cairn(["backup", "--json"])
        #expect(b2.status == 0, "\(b2.stderr)")
        // Steady activity after the second backup: a batch every second for 26 s. Each commit happens between two
        // server timestamps taken before and after it, so the gaps between batches hold no commit.
        var batches: [(before: Double, after: Double, count: Int)] = []
        for i in 0..<26 {
            let before = Double(try c.psql("SELECT extract(epoch FROM clock_timestamp())"))!
            try c.psql("INSERT INTO t (v) SELECT 'batch-\(i)' FROM generate_series(1, 10)")
            let row = try c.psql("SELECT extract(epoch FROM clock_timestamp()) || ' ' || count(*) FROM t").split(
                separator: " ")
            batches.append((before, Double(row[0])!, Int(row[1])!))
            usleep(1_000_000)
        }
        try c.switchAndWaitForArchive()
        let repo = try Self.repository(c)
        let id1 = try #require(
            b1.stdout.split(separator: "\"").first { $0.hasSuffix("F") && $0.count == 16 }.map(String.init))
        let before = try repo.list(prefix: "backups/\(id1)/")
        #expect(!before.isEmpty)

        let dry = try c.cairn(["expire", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("would delete backup \(id1)"))
        #expect(try repo.list(prefix: "backups/\(id1)/").count == before.count, "a dry run deletes nothing")

        let run = try c.cairn(["expire", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("\"deleted_objects\""))
        let windowStart = Date().addingTimeInterval(-20)
        #expect(
            try repo.list(prefix: "backups/\(id1)/").isEmpty, "the expired backup's objects are gone from the bucket")
        let list = try c.cairn(["list", "--json"]).stdout
        #expect(!list.contains(id1))

        // Restore to the earliest quiet moment of the window: the middle of the first gap between batches after its start.
        let gaps = zip(batches, batches.dropFirst()).map { (mid: ($0.after + $1.before) / 2, count: $0.count) }
        let pick = try #require(gaps.first { $0.mid > windowStart.timeIntervalSince1970 + 1 })
        let target = Date(timeIntervalSince1970: pick.mid)
        let expected = pick.count
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let restored = try c.restoreAndStart(["--target-time", f.string(from: target)])
        defer { restored.destroy() }
        #expect(Int(try restored.psql("SELECT count(*) FROM t")) == expected)
    }

    @Test func pinsSurviveExpireAndUnpinLetsThemGo() throws {
        let c = try ScratchCluster(name: "expire-pin") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1, extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 1")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let b1 = try c.cairn(["backup", "--json"]).stdout
        let id1 = try #require(b1.split(separator: "\"").first { $0.hasSuffix("F") && $0.count == 16 }.map(String.init))
        usleep(1_100_000)
        #expect(try c.cairn(["backup"]).status == 0)
        let pinned = try c.cairn(["pin", id1, "--reason", "audit 2026", "--json"])
        #expect(pinned.status == 0 && pinned.stdout.contains("\"reason\" : \"audit 2026\""), "\(pinned.stdout)")
        // the second backup is now older than the 1 s window: it is the anchor, the first only pinned
        usleep(1_100_000)
        #expect(try c.cairn(["list"]).stdout.contains("yes: audit 2026"))
        let e1 = try c.cairn(["expire"])
        #expect(e1.stdout.contains("keep   backup \(id1): pinned: audit 2026"), "\(e1.stdout)")
        #expect(try c.cairn(["list"]).stdout.contains(id1))
        // The WAL the pinned backup needs stays too: it still restores.
        try c.restoreAndStart(["--backup", id1, "--immediate"]).destroy()
        #expect(try c.cairn(["unpin", id1, "--json"]).stdout.contains("\"pinned\" : false"))
        #expect(try c.cairn(["unpin", id1]).status == ErrorCode.backupNotFound.exitCode)
        #expect(try c.cairn(["pin", "20000101T000000F", "--reason", "x"]).status == ErrorCode.backupNotFound.exitCode)
        #expect(try c.cairn(["expire"]).status == 0)
        #expect(!(try c.cairn(["list"]).stdout.contains(id1)))
    }

    /// `kill -9` in the middle of an expire, then expire again: every backup `list` shows is complete, and the
    /// second run finishes the job.
    @Test func aKilledExpireLeavesOnlyGarbageThatTheNextRunRemoves() throws {
        let c = try ScratchCluster(name: "expire-kill") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1, limits: ["bundle_size: 1MiB"],
                extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 1\n  orphan_safety_age: 1m")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 3 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        for _ in 0..<4 {
            #expect(try c.cairn(["backup"]).status == 0)
            try c.psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 10 = 0")
        }
        try c.switchAndWaitForArchive()
        // Past the 1-second recovery window of the newest backup, so that backup alone covers the window (a backup
        // on a local folder takes well under a second now that its lock does not wait).
        sleep(2)
        let expected = try c.psql("SELECT sum(abalance) FROM pgbench_accounts")
        let repo = LocalRepository(root: c.dir + "/repo")
        var killedMidway = 0
        for attempt in 0..<3 {
            let pid = try Run.spawnCairnAsPostgres(["--config", c.config!, "expire"])
            usleep(UInt32(20_000 + attempt * 15_000))
            kill(pid, SIGKILL)
            if Run.wait(pid) == 128 + SIGKILL { killedMidway += 1 }
            // Whatever the kill left: every committed backup has all its objects.
            let catalog = try Catalog.load(from: repo)
            for b in catalog.backups {
                for o in b.allObjects {
                    #expect(
                        try repo.head(o.key) != nil,
                        "backup \(b.id) lost \(o.key) after a kill; objects: \((try? repo.list(prefix: "backups/\(b.id)/").map(\.key)) ?? [])"
                    )
                }
            }
        }
        // The next run finishes: only the newest backup and the WAL from its start remain, and it restores.
        #expect(try c.cairn(["expire"]).status == 0)
        let catalog = try Catalog.load(from: repo)
        #expect(catalog.backups.count == 1)
        #expect(
            catalog.uncommitted.isEmpty
                || catalog.uncommitted.allSatisfy { id in
                    (catalog.backupObjects[id] ?? []).allSatisfy {
                        Date().timeIntervalSince($0.lastModified ?? Date()) < 60
                    }
                })
        let r = try c.restoreAndStart()
        defer { r.destroy() }
        #expect(try r.psql("SELECT sum(abalance) FROM pgbench_accounts") == expected)
        Measurements.record(["expire kill -9 trials: 3 (\(killedMidway) killed before finishing)"])
    }
}

// MARK: - Expire never deletes what a running job needs

extension ExpireTests {
    /// A restore laid out from an old backup but not started yet: an expire that would delete that backup and the
    /// WAL from its start keeps both until recovery has ended, and the restore then replays to the end.
    @Test func expireKeepsWhatARestoreStillReplays() throws {
        let c = try ScratchCluster(name: "expire-lease") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1,
                extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 1\n  orphan_safety_age: 1m")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id serial, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'a' FROM generate_series(1, 100)")
        let b1 = try c.cairn(["backup", "--json"]).stdout
        let id1 = try #require(b1.split(separator: "\"").first { $0.hasSuffix("F") && $0.count == 16 }.map(String.init))
        try c.psql("INSERT INTO t (v) SELECT 'b' FROM generate_series(1, 100)")
        try c.switchAndWaitForArchive()
        usleep(1_100_000)
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO t (v) SELECT 'c' FROM generate_series(1, 100)")
        try c.switchAndWaitForArchive()
        usleep(1_100_000)
        #expect(try c.cairn(["expire", "--dry-run"]).stdout.contains("would delete backup \(id1)"))

        let dir = c.dir + "/restore"
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let r = try c.cairn(["restore", "--target-dir", dir + "/data", "--backup", id1])
        #expect(r.status == 0, "\(r.stderr)")
        let repo = LocalRepository(root: c.dir + "/repo")
        #expect(try repo.list(prefix: "leases/").count == 1)
        let e = try c.cairn(["expire"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.contains("keep   backup \(id1)") && e.stdout.contains("being restored"), "\(e.stdout)")
        #expect(e.stdout.contains("replayed by a restore"), "\(e.stdout)")

        let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { restored.destroy() }
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(try restored.psql("SELECT count(*) FROM t") == "300")
        // Recovery ended: recovery_end_command released the lease, and the backup can go.
        #expect(try repo.list(prefix: "leases/").isEmpty)
        #expect(try c.cairn(["expire"]).stdout.contains("delete backup \(id1)"))
    }

    /// A backup waiting for its WAL longer than `orphan_safety_age`: an expire meanwhile leaves its objects alone,
    /// and the backup commits whole.
    @Test func expireLeavesARunningBackupAlone() throws {
        let c = try ScratchCluster(name: "expire-running") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1,
                extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 1\n  orphan_safety_age: 1m")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id serial, v text)")
        try c.psql("INSERT INTO t (v) SELECT 'a' FROM generate_series(1, 1000)")
        try c.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
        try c.psql("SELECT pg_reload_conf()")
        let result = Mutex<ProcessResult?>(nil)
        let backup = Thread { result.withLock { $0 = try? c.cairn(["backup", "--wal-timeout", "120s"]) } }
        backup.start()
        let repo = LocalRepository(root: c.dir + "/repo")
        let deadline = Date().addingTimeInterval(60)
        while try repo.list(prefix: "backups/").isEmpty, Date() < deadline { usleep(200_000) }
        let objects = try repo.list(prefix: "backups/")
        #expect(!objects.isEmpty)
        // As if it had waited for WAL for over an hour: its objects are older than orphan_safety_age.
        try Run.shell("find \(c.dir)/repo/backups -type f -exec touch -d '-2 hours' {} +")
        let e = try c.cairn(["expire"])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.contains("a backup that may be writing it is running"), "\(e.stdout)")
        #expect(try repo.list(prefix: "backups/").count >= objects.count)

        try c.psql("ALTER SYSTEM RESET archive_command")
        try c.psql("SELECT pg_reload_conf()")
        while !backup.isFinished { usleep(100_000) }
        let r = try #require(result.withLock { $0 })
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try c.cairn(["verify"]).status == 0)
        #expect(try repo.list(prefix: "leases/").isEmpty)
    }
}
