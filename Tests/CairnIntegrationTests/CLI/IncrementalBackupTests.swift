import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

/// `cairn backup --type incr|diff` on real PostgreSQL 15 and 18 clusters, with the local folder and the S3 emulator:
/// only changed blocks are stored, a chain restores exactly to a point in time, and damage in the middle of a chain
/// is found by `verify` and refused by `restore`.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct IncrementalBackupTests {
    /// Takes a backup and returns its JSON summary's fields.
    static func backup(
        _ c: ScratchCluster, _ type: String
    ) throws -> (id: String, type: String, parent: String?, stored: Int64, stderr: String) {
        let r = try c.cairn(["--log-level", "info", "backup", "--type", type, "--json"])
        guard r.status == 0 else { throw TestFailure("backup --type \(type) failed (\(r.status)): \(r.stderr)") }
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        return (
            json["id"] as? String ?? "", json["type"] as? String ?? "", json["parent"] as? String,
            (json["stored_size"] as? NSNumber)?.int64Value ?? 0, r.stderr
        )
    }

    @Test(arguments: PGMajor.matrix(RepoKind.standard))
    func aChainRestoresExactlyToAPointInTime(repo: RepoKind, major: PGMajor) throws {
        let c = try ScratchCluster(name: "incr-\(repo)-\(major)", major: major) { dir, conninfo in
            try Run.shell("mkdir -p \(dir)/drills \(dir)/ts1 && chown postgres \(dir)/drills \(dir)/ts1")
            let drills = """
                drills:
                  scratch_directory: \(dir)/drills
                  target: end
                  assertions:
                    - name: accounts are there
                      database: postgres
                      sql: SELECT count(*) = 400000 FROM pgbench_accounts
                """
            return try TestRepository.config(
                repo, dir: dir, conninfo: conninfo, major: major, limits: ["bundle_size: 4MiB", "parallelism: 2"],
                extra: drills, cluster: ["backup_method: files"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        // A tablespace, whose files an incremental keeps at block level too.
        try c.psql("CREATE TABLESPACE ts1 LOCATION '\(c.dir)/ts1'")
        try c.psql(
            "CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g")
        let oid = try c.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 4 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        try c.psql("CREATE TABLE shrinking AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g")
        try c.psql("CREATE TABLE doomed AS SELECT g FROM generate_series(1, 1000) g")
        try c.psql("CREATE TABLE marks (n int)")
        // Hint bits set now: on 18 (data checksums on) the first hint bit set after a checkpoint logs the whole
        // page, so reading fresh rows later would change every page of their tables.
        try c.psql("VACUUM")

        // No full backup yet: an incremental is taken as a full one, and says so.
        let full = try Self.backup(c, "incr")
        #expect(full.type == "full" && full.parent == nil && full.id.hasSuffix("F"))
        #expect(
            full.stderr.contains("taking a full backup instead of --type incr: there is no physical backup"),
            "\(full.stderr)")

        // 1 % of pgbench_accounts changed in one range; a table truncated at its end by VACUUM, one dropped, one new.
        try c.psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 4000")
        try c.psql("DELETE FROM shrinking WHERE g > 5000")
        try c.psql("VACUUM shrinking")
        try c.psql("DROP TABLE doomed")
        try c.psql("CREATE TABLE fresh AS SELECT g, md5(g::text) AS v FROM generate_series(1, 5000) g")
        try c.psql("UPDATE in_ts SET v = 'changed' WHERE id % 1000 = 0")
        let i1 = try Self.backup(c, "incr")
        #expect(i1.type == "incr" && i1.parent == full.id && i1.id.hasSuffix("I"), "\(i1)")
        #expect(
            i1.stored * 5 < full.stored,
            "an incremental after a 1 % change stores \(i1.stored) bytes, the full \(full.stored)")
        // On 17+ the WAL summaries name the changed blocks, and only those are read; on 15 every page's LSN is.
        let read = try #require(i1.stderr.firstMatch(of: /read_bytes=(\d+) total_bytes=(\d+)/), "\(i1.stderr)")
        let (readBytes, totalBytes) = (Int64(read.1)!, Int64(read.2)!)
        if major.rawValue >= 17 {
            #expect(i1.stderr.contains("changed_blocks=wal-summaries"), "\(i1.stderr)")
            #expect(readBytes * 5 < totalBytes, "read \(readBytes) of \(totalBytes)")
        } else {
            #expect(i1.stderr.contains("changed_blocks=page-lsn"), "\(i1.stderr)")
        }

        try c.psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN 200001 AND 204000")
        let i2 = try Self.backup(c, "incr")
        #expect(i2.type == "incr" && i2.parent == i1.id)

        // The target: after mark 1, before mark 2.
        try c.psql("INSERT INTO marks VALUES (1)")
        try c.psql("UPDATE pgbench_accounts SET abalance = abalance - 7 WHERE aid % 97 = 0")
        let atTarget =
            try BackupTests.digest(c, "pgbench_accounts") + "|" + (try BackupTests.digest(c, "shrinking")) + "|"
            + (try BackupTests.digest(c, "fresh")) + "|" + (try BackupTests.digest(c, "in_ts"))
        let target = try c.timeTargetBetweenCommits()
        try c.psql("INSERT INTO marks VALUES (2)")
        try c.psql("DROP TABLE fresh")
        try c.psql("UPDATE pgbench_accounts SET abalance = 0 WHERE aid <= 100")
        let i3 = try Self.backup(c, "incr")
        #expect(i3.parent == i2.id)
        let d = try Self.backup(c, "diff")
        #expect(d.type == "diff" && d.parent == full.id && d.id.hasSuffix("D"))
        let latest = try BackupTests.digest(c, "pgbench_accounts") + "|" + (try BackupTests.digest(c, "shrinking"))
        try c.switchAndWaitForArchive()

        let list = try c.cairn(["list"])
        #expect(list.stdout.contains("incr") && list.stdout.contains("diff"), "\(list.stdout)")
        let verified = try c.cairn(["verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")

        // A time between two incrementals: the restore starts from the second (full → i1 → i2) and replays to it.
        let dry = try c.cairn(["restore", "--target-dir", c.dir + "/dry", "--target-time", target, "--dry-run"])
        #expect(dry.stdout.contains("from its chain of 3 backups: \(full.id) → \(i1.id) → \(i2.id)"), "\(dry.stdout)")
        let atTime = try c.restoreAndStart(["--target-time", target, "--tablespace-map", "\(oid)=\(c.dir)/ts1-at-time"])
        #expect(try atTime.psql("SELECT string_agg(n::text, ',') FROM marks") == "1")
        #expect(
            try BackupTests.digest(atTime, "pgbench_accounts") + "|" + (try BackupTests.digest(atTime, "shrinking"))
                + "|"
                + (try BackupTests.digest(atTime, "fresh")) + "|" + (try BackupTests.digest(atTime, "in_ts"))
                == atTarget)
        #expect(try atTime.psql("SELECT pg_tablespace_location(\(oid))") == "\(c.dir)/ts1-at-time")
        #expect(try atTime.psql("SELECT count(*) FROM pg_class WHERE relname = 'doomed'") == "0")
        atTime.destroy()

        // The newest backup (the differential, full → diff), laid out and checked by pg_verifybackup, then replayed.
        let dir = c.dir + "/latest"
        try Run.shell("mkdir -p \(dir) && chown postgres \(dir)")
        let r = try c.cairn([
            "restore", "--target-dir", dir + "/data", "--archive-mode", "off", "--latest",
            "--tablespace-map", "\(oid)=\(dir)/ts1"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let pgVerify = try Run.shell(
            "runuser -u postgres -- \(c.bin)/pg_verifybackup --no-parse-wal \(dir)/data 2>&1", check: false)
        #expect(pgVerify.status == 0, "\(pgVerify.stdout)")
        let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { restored.destroy() }
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(
            try BackupTests.digest(restored, "pgbench_accounts") + "|" + (try BackupTests.digest(restored, "shrinking"))
                == latest)
        #expect(try restored.psql("SELECT string_agg(n::text, ',' ORDER BY n) FROM marks") == "1,2")
        #expect(try restored.psql("SELECT count(*) FROM pg_class WHERE relname = 'fresh'") == "0")
        restored.stop()

        // A drill of an incremental in the middle of its chain: restored, replayed, checked.
        let drill = try c.cairn(["drill", "--backup", i2.id, "--json"])
        #expect(drill.status == 0 && drill.stdout.contains("\"verdict\" : \"pass\""), "\(drill.stdout)\(drill.stderr)")
        #expect(
            drill.stdout.contains("\"name\" : \"pg_verifybackup\"")
                && drill.stdout.contains("\"name\" : \"pg_amcheck\""))

        // A damaged object of the first incremental: verify names it and every backup built on it; a restore of
        // the chain is refused, and one of the differential (which does not need it) still works.
        let store = try ExpireTests.repository(c)
        let key = try #require(
            try store.list(prefix: Layout.backupPrefix(i1.id)).map(\.key).first { $0.hasSuffix(".tar.zst") })
        var bytes = try store.getBytes(key)
        bytes[bytes.count / 2] ^= 0x40
        try store.put(key, bytes, options: .overwrite)
        if repo == .local { try Run.shell("chown -R postgres \(c.dir)/repo") }
        let damaged = try c.cairn(["verify", "--full"])
        #expect(damaged.status != 0)
        #expect(damaged.stdout.contains(key), "\(damaged.stdout)")
        #expect(
            damaged.stdout.contains("broken-chain \(i2.id)") && damaged.stdout.contains("broken-chain \(i3.id)"),
            "\(damaged.stdout)")
        let refused = try c.cairn([
            "restore", "--target-dir", c.dir + "/refused", "--backup", i2.id, "--immediate", "--archive-mode", "off",
            "--tablespace-map", "\(oid)=\(c.dir)/ts1-refused"
        ])
        #expect(refused.status == ErrorCode.dataCorrupt.exitCode, "\(refused.stderr)")
        #expect(refused.stderr.contains(key), "\(refused.stderr)")
    }

    /// On 18, Cairn's chain and PostgreSQL's own (`pg_basebackup --incremental`, put together by
    /// `pg_combinebackup`), taken of the same quiet cluster, restore to the same database.
    @Test(.enabled(if: PGMajor.tested.contains(.v18)))
    func aChainRestoresWhatPgCombinebackupRestores() throws {
        let major = PGMajor.v18
        let c = try ScratchCluster(name: "incr-combine", major: major) {
            try TestRepository.config(.local, dir: $0, conninfo: $1, major: major, cluster: ["backup_method: files"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let pgbench = "runuser -u postgres -- \(c.bin)/pgbench -h \(c.socketDir) -p \(c.port) -U postgres"
        let basebackup =
            "runuser -u postgres -- \(c.bin)/pg_basebackup -h \(c.socketDir) -p \(c.port) -U postgres -c fast"
        try Run.shell("\(pgbench) -i -q -s 3 postgres >/dev/null 2>&1")
        try c.psql("VACUUM")
        _ = try Self.backup(c, "full")
        try Run.shell("\(basebackup) -D \(c.dir)/pg-full")
        try Run.shell("\(pgbench) -n -c 2 -t 1500 postgres >/dev/null 2>&1")
        try c.psql("CREATE TABLE later AS SELECT g FROM generate_series(1, 30000) g")
        try c.psql("DELETE FROM pgbench_accounts WHERE aid > 250000")
        try c.psql("VACUUM pgbench_accounts")
        // Quiet from here on: both incrementals see the same data.
        let i1 = try Self.backup(c, "incr")
        #expect(i1.type == "incr")
        try Run.shell("\(basebackup) -D \(c.dir)/pg-incr --incremental=\(c.dir)/pg-full/backup_manifest")
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pg_combinebackup -o \(c.dir)/combined \(c.dir)/pg-full \(c.dir)/pg-incr")
        try c.switchAndWaitForArchive()

        let combined = try ScratchCluster(restoredAt: c.dir + "/combined", dir: c.dir, config: nil)
        defer { combined.stop() }
        // never into the repository
        try Run.shell("echo \"archive_mode = off\" >> \(c.dir)/combined/postgresql.auto.conf")
        try combined.start()
        let ours = try c.restoreAndStart(["--backup", i1.id, "--immediate"])
        defer { ours.destroy() }
        for db in ["postgres"] {
            #expect(try LogicalBackupTests.plainDump(ours, db) == (try LogicalBackupTests.plainDump(combined, db)))
        }
        #expect(try ours.psql("SELECT count(*) FROM pgbench_accounts") == "250000")
    }

    /// `kill -9` while an incremental uploads: nothing is committed, and the next incremental builds on the full
    /// backup and restores exactly.
    @Test func aKilledIncrementalCommitsNothing() throws {
        let c = try ScratchCluster(name: "incr-kill") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1, limits: ["bundle_size: 1MiB", "parallelism: 1"],
                cluster: ["backup_method: files"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 6 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        let full = try Self.backup(c, "full")
        try c.psql("UPDATE pgbench_accounts SET abalance = abalance + 1")  // every page changes
        let pid = try Run.spawnCairnAsPostgres(["--config", c.config!, "backup", "--type", "incr"])
        var sawUpload = false
        for _ in 0..<500 {
            let objects = (try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/repo/backups")) ?? []
            if objects.contains(where: { $0.hasSuffix("I") }) { sawUpload = true; break }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        #expect(Run.wait(pid) == 128 + SIGKILL)
        #expect(sawUpload, "the incremental was killed while uploading")
        let list = try c.cairn(["list", "--json"]).stdout
        #expect(!list.contains("\"incr\""), "\(list)")

        let expected = try BackupTests.digest(c, "pgbench_accounts")
        let next = try Self.backup(c, "incr")
        #expect(next.type == "incr" && next.parent == full.id)
        try c.switchAndWaitForArchive()
        let r = try c.restoreAndStart(["--backup", next.id, "--immediate"])
        defer { r.destroy() }
        #expect(try BackupTests.digest(r, "pgbench_accounts") == expected)
    }
}
