import CairnBase
import Foundation
import TestSupport
import Testing

/// `cairn restore --delta` and `--standby` on real PostgreSQL 15 and 18 clusters, with the S3 emulator and the local
/// folder: a data directory that lived on after a restore, then had one block damaged without its size or time
/// changing, is repaired (only what differs written, strays removed) and starts with the exact rows; a failed
/// primary rejoins as a standby that streams.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct DeltaRestoreTests {
    /// The delta summary of a `restore --json`.
    static func delta(_ r: ProcessResult) throws -> [String: Int64] {
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        let d = try #require(json["delta"] as? [String: Any], "no delta summary in \(r.stdout)")
        return d.compactMapValues { ($0 as? NSNumber)?.int64Value }
    }

    /// A cluster with a table, a marks table, a table larger than a frame (``FileFrames``) and a tablespace-free
    /// layout, archiving into `repo`.
    static func cluster(
        _ name: String, repo: RepoKind, major: PGMajor, masterKey: String? = nil
    ) throws
        -> ScratchCluster
    {
        let c = try ScratchCluster(name: name, major: major) { dir, conninfo in
            try TestRepository.config(
                repo, dir: dir, conninfo: conninfo, major: major, limits: ["bundle_size: 4MiB", "parallelism: 2"],
                masterKey: masterKey, cluster: ["backup_method: files"])
        }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
        try c.psql("CREATE TABLE marks (n int)")
        try c.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 150000) g")
        try c.psql("VACUUM")
        return c
    }

    /// A cluster (see ``cluster(_:repo:major:)``) with a full backup, and a copy restored from it that lived on
    /// (``livedOn(_:dir:args:)``) in `c.dir/<copy>`, returned as the second value. With `tablespace`, table `in_ts`
    /// lives in tablespace `ts1`, restored to `<copy>/ts1` by the arguments returned third.
    static func clusterWithACopy(
        _ name: String, repo: RepoKind, major: PGMajor, copy: String,
        tablespace: Bool = false, masterKey: String? = nil
    ) throws -> (ScratchCluster, String, [String]) {
        let c = try cluster(name, repo: repo, major: major, masterKey: masterKey)
        let dir = c.dir + "/" + copy
        var args: [String] = []
        do {
            if tablespace {
                try Run.shell("mkdir -p \(c.dir)/ts1 && chown postgres \(c.dir)/ts1")
                try c.psql("CREATE TABLESPACE ts1 LOCATION '\(c.dir)/ts1'")
                try c.psql(
                    "CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g"
                )
                args = [
                    "--tablespace-map",
                    "\(try c.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'"))=\(dir)/ts1"
                ]
            }
            #expect(try c.cairn(["backup"]).status == 0)
            try c.switchAndWaitForArchive()
            try livedOn(c, dir: dir, args: args)
        } catch {
            c.destroy()
            throw error
        }
        return (c, dir, args)
    }

    /// Restores `args` into `data` (which must exist), failing the test with stderr when it fails.
    static func restore(_ c: ScratchCluster, _ data: String, _ args: [String]) throws -> ProcessResult {
        let r = try c.cairn(["restore", "--target-dir", data, "--archive-mode", "off"] + args)
        guard r.status == 0 else { throw TestFailure("restore \(args) failed (\(r.status)): \(r.stderr)") }
        return r
    }

    /// A full restore of the newest backup into `dir/data`, started, promoted, changed (rows the backup never had,
    /// a new table, its own timeline's WAL) and stopped: a copy that lived on.
    static func livedOn(_ c: ScratchCluster, dir: String, args: [String] = []) throws {
        try Run.shell("mkdir -p \(dir) && chown postgres \(dir)")
        _ = try restore(c, dir + "/data", ["--latest"] + args)
        let lived = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        try lived.start()
        try lived.waitUntilPromoted()
        try lived.psql("INSERT INTO t SELECT g, 'later' FROM generate_series(20001, 30000) g")
        try lived.psql("UPDATE t SET v = 'changed' WHERE id % 50 = 0")
        try lived.psql("CREATE TABLE stray AS SELECT g FROM generate_series(1, 1000) g")
        try lived.psql("CHECKPOINT")
        lived.stop()
    }

    /// Starts the cluster restored at `data` (in `dir`), waits until it is promoted and checks its rows of `t` and
    /// `marks` are `expected`; the caller destroys it.
    static func startAndCheck(_ c: ScratchCluster, data: String, dir: String, expected: String) throws -> ScratchCluster
    {
        let restored = try ScratchCluster(restoredAt: data, dir: dir, config: c.config)
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(try BackupTests.digest(restored, "t") + "|" + (try BackupTests.digest(restored, "marks")) == expected)
        return restored
    }

    /// Overwrites block 1 of `file` without changing its size or modification time.
    static func damageOneBlock(_ file: String) throws {
        let before = try FileManager.default.attributesOfItem(atPath: file)
        try Run.shell(
            "touch -r \(file) \(file).time && dd if=/dev/urandom of=\(file) bs=8192 seek=1 count=1 conv=notrunc status=none && touch -r \(file).time \(file) && rm \(file).time"
        )
        let after = try FileManager.default.attributesOfItem(atPath: file)
        #expect(
            before[.size] as? Int == after[.size] as? Int
                && before[.modificationDate] as? Date == after[.modificationDate] as? Date)
    }

    @Test(arguments: PGMajor.matrix([.s3], others: [.s3]))
    func aDeltaRestoreRepairsADataDirectory(repo: RepoKind, major: PGMajor) throws {
        let (c, dir, _) = try Self.clusterWithACopy("delta-\(repo)-\(major)", repo: repo, major: major, copy: "copy")
        defer { c.destroy() }
        try c.psql("INSERT INTO marks VALUES (1)")  // after the backup: replayed from the archive
        let expected = try BackupTests.digest(c, "t") + "|" + (try BackupTests.digest(c, "marks"))
        let tPath = try c.psql("SELECT pg_relation_filepath('t')")
        let (bigPath, big) = (try c.psql("SELECT pg_relation_filepath('big')"), try BackupTests.digest(c, "big"))
        try c.switchAndWaitForArchive()
        let data = dir + "/data"
        // Strays: a file in a database folder, a folder of files, a server log (kept), WAL of the copy's own timeline.
        try Run.shell(
            """
            cd \(data) && echo x > base/1/999999 && mkdir -p junk/deeper && echo y > junk/deeper/f && mkdir -p log \
            && echo 'a server log' > log/postgresql.log && chown -R postgres .
            """)
        #expect(
            try Run.shell("ls \(data)/pg_wal | grep -c '^00000002'", check: false).stdout.trimmingCharacters(
                in: .whitespacesAndNewlines) != "0")

        // Refused: a running cluster's directory (always), another cluster's (without --force).
        let running = try c.cairn(["restore", "--delta", "--target-dir", c.data, "--archive-mode", "off"])
        #expect(
            running.status == ErrorCode.restoreDirNotEmpty.exitCode && running.stderr.contains("running"),
            "\(running.stderr)")
        try Run.shell("mkdir -p \(c.dir)/other && chown postgres \(c.dir)/other")
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/initdb -D \(c.dir)/other/data -A trust -U postgres --no-sync >/dev/null")
        let foreign = try c.cairn(["restore", "--delta", "--target-dir", c.dir + "/other/data", "--archive-mode", "off"]
        )
        #expect(
            foreign.status == ErrorCode.restoreDirNotEmpty.exitCode
                && foreign.stderr.contains("belongs to another cluster")
                && foreign.stderr.contains("HINT"), "\(foreign.stderr)")

        // The delta restore: the rows the copy added go, strays are removed, the server log stays.
        let first = try Self.delta(try Self.restore(c, data, ["--delta", "--latest", "--json"]))
        #expect(
            first["bytes_rewritten"]! > 0 && first["files_unchanged"]! > 0 && first["files_removed"]! >= 3, "\(first)")
        #expect(first["bytes_compared"]! > first["bytes_rewritten"]!, "\(first)")
        #expect(
            !FileManager.default.fileExists(atPath: data + "/base/1/999999")
                && !FileManager.default.fileExists(atPath: data + "/junk"))
        #expect(FileManager.default.fileExists(atPath: data + "/log/postgresql.log"))
        // No WAL of any timeline is left (17 and later also have their `summaries` folder there), but the spool of
        // the backup's own WAL, fetched for the coming recovery.
        let wal = try Run.shell("ls \(data)/pg_wal").stdout.split(separator: "\n").map(String.init)
        #expect(Set(wal).isSubset(of: ["archive_status", "summaries", "cairn-prefetch"]), "\(wal)")

        // One block of each table damaged, size and time kept: a second delta run rewrites those blocks (and
        // postgresql.auto.conf, whose recovery settings it replaces) only. Of the large table (10 MB: three frames)
        // only the damaged block's frame is fetched, by range.
        try Self.damageOneBlock(data + "/" + tPath)
        try Self.damageOneBlock(data + "/" + bigPath)
        let second = try Self.delta(try Self.restore(c, data, ["--delta", "--latest", "--json"]))
        #expect(second["files_rewritten"] == 3 && second["files_removed"] == 0, "\(second)")
        #expect(second["bytes_rewritten"]! >= 2 * 8192 && second["bytes_rewritten"]! < 3 * 8192, "\(second)")
        #expect(second["frames_fetched"] == 1, "\(second)")
        // Only the bundles holding the damaged table and the recovery settings are fetched: the others' files are
        // on disk with the SHA-256 the backup recorded (the damage kept size and time, so only content tells).
        #expect(second["bundles_fetched"]! >= 1 && second["bundles_skipped"]! > second["bundles_fetched"]!, "\(second)")

        // A run that stops half-way (here: a file it may not open) leaves no signal file, so PostgreSQL cannot take
        // the folder for a restored one; the next --delta run completes it.
        #expect(FileManager.default.fileExists(atPath: data + "/recovery.signal"))
        try Run.shell("chown root \(data)/\(tPath)")
        let stopped = try c.cairn(["restore", "--delta", "--target-dir", data, "--archive-mode", "off", "--latest"])
        #expect(
            stopped.status == ErrorCode.localIO.exitCode && stopped.stderr.contains("--delta again"),
            "\(stopped.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/recovery.signal"))
        try Run.shell("chown postgres \(data)/\(tPath)")
        let human = try Self.restore(c, data, ["--delta", "--latest"])
        #expect(FileManager.default.fileExists(atPath: data + "/recovery.signal"))
        #expect(human.stdout.contains("delta: ") && human.stdout.contains(" 0 removed"), "\(human.stdout)")
        let restored = try Self.startAndCheck(c, data: data, dir: dir, expected: expected)
        defer { restored.destroy() }
        #expect(try restored.psql("SELECT count(*) FROM pg_class WHERE relname = 'stray'") == "0")
        #expect(try BackupTests.digest(restored, "big") == big)
    }

    /// On an encrypted S3 repository a damaged block of a large table costs one frame too: the encrypted chunks
    /// that hold it are fetched by range (after the object's header), not the bundle.
    @Test func anEncryptedRepositoryServesOnlyTheDamagedFrame() throws {
        let (c, dir, _) = try Self.clusterWithACopy(
            "delta-enc", repo: .s3, major: .v15, copy: "copy", masterKey: EncryptedRepositoryTests.newKey())
        defer { c.destroy() }
        let (bigPath, big) = (try c.psql("SELECT pg_relation_filepath('big')"), try BackupTests.digest(c, "big"))
        let data = dir + "/data"
        _ = try Self.restore(c, data, ["--delta", "--latest"])
        try Self.damageOneBlock(data + "/" + bigPath)
        let second = try Self.delta(try Self.restore(c, data, ["--delta", "--latest", "--json"]))
        #expect(second["frames_fetched"] == 1 && second["bytes_rewritten"]! < 2 * 8192, "\(second)")
        let restored = try Self.startAndCheck(
            c, data: data, dir: dir,
            expected: try BackupTests.digest(c, "t") + "|" + (try BackupTests.digest(c, "marks")))
        defer { restored.destroy() }
        #expect(try BackupTests.digest(restored, "big") == big)
    }

    @Test(arguments: PGMajor.matrix([.local]))
    func aDeltaRestoreOfAnIncrementalChain(repo: RepoKind, major: PGMajor) throws {
        let (c, dir, map) = try Self.clusterWithACopy(
            "delta-chain-\(repo)-\(major)", repo: repo, major: major, copy: "copy",
            tablespace: true)
        defer { c.destroy() }
        try c.psql("UPDATE in_ts SET v = 'incr' WHERE id % 100 = 0")

        try c.psql("UPDATE t SET v = 'incr' WHERE id <= 200")
        try c.psql("DELETE FROM t WHERE id > 19000")
        try c.psql("VACUUM t")
        let incr = try c.cairn(["backup", "--type", "incr", "--json"])
        #expect(incr.status == 0 && incr.stdout.contains("\"incr\""), "\(incr.stdout)\(incr.stderr)")
        try c.psql("INSERT INTO marks VALUES (2)")
        let expected = try BackupTests.digest(c, "t") + "|" + (try BackupTests.digest(c, "marks"))
        let inTs = try BackupTests.digest(c, "in_ts")
        let tsPath = try c.psql("SELECT pg_relation_filepath('in_ts')")
        try c.switchAndWaitForArchive()

        // In the tablespace's folder: a stray file in this major's folder (removed), another major's folder (kept).
        let data = dir + "/data"
        try Run.shell(
            "cd \(dir)/ts1 && echo x > \"$(ls -d PG_\(major.rawValue)_*)/stray\" && mkdir -p PG_99_0 && echo y > PG_99_0/kept && chown -R postgres ."
        )
        let first = try Self.delta(try Self.restore(c, data, ["--delta", "--latest", "--json"] + map))
        #expect(first["bytes_rewritten"]! > 0 && first["files_unchanged"]! > 0, "\(first)")
        #expect(
            try Run.shell("ls \(dir)/ts1/PG_\(major.rawValue)_*/stray 2>/dev/null | wc -l").stdout.trimmingCharacters(
                in: .whitespacesAndNewlines) == "0")
        #expect(FileManager.default.fileExists(atPath: dir + "/ts1/PG_99_0/kept"))
        // A block damaged in the tablespace, in a relation the chain holds as changed blocks.
        try Self.damageOneBlock(data + "/" + tsPath)
        let second = try Self.delta(try Self.restore(c, data, ["--delta", "--latest", "--json"] + map))
        #expect(second["files_rewritten"] == 2 && second["bytes_rewritten"]! < 8192 + 8192, "\(second)")
        #expect(second["bundles_skipped"]! > 0, "\(second)")
        let restored = try Self.startAndCheck(c, data: data, dir: dir, expected: expected)
        defer { restored.destroy() }
        #expect(try BackupTests.digest(restored, "in_ts") == inTs)
    }

    /// A failed primary (here: a copy that was promoted and lived on) rejoins as a standby with `--delta
    /// --standby`, and streams from the primary; the password in `--primary-conninfo` is never printed.
    @Test(arguments: PGMajor.matrix([.local]))
    func aStandbyBuiltWithDeltaStreams(repo: RepoKind, major: PGMajor) throws {
        let (c, dir, _) = try Self.clusterWithACopy(
            "standby-\(repo)-\(major)", repo: repo, major: major, copy: "standby")
        defer { c.destroy() }

        let conninfo =
            "host=\(c.socketDir) port=\(c.port) user=postgres application_name=cairnstandby password=sekrit-pw"
        let refused = try c.cairn(["restore", "--standby", "--target-dir", dir + "/data", "--immediate"])
        #expect(refused.status == ErrorCode.usage.exitCode && refused.stderr.contains("--standby"), "\(refused.stderr)")
        let badSlot = try c.cairn([
            "restore", "--standby", "--target-dir", dir + "/data", "--primary-slot-name", "My-Slot"
        ])
        #expect(badSlot.status == ErrorCode.usage.exitCode && badSlot.stderr.contains("slot"), "\(badSlot.stderr)")
        try c.psql("SELECT pg_create_physical_replication_slot('cairn_standby')")
        let r = try Self.restore(
            c, dir + "/data",
            ["--delta", "--standby", "--primary-conninfo", conninfo, "--primary-slot-name", "cairn_standby"])
        #expect(!r.stdout.contains("sekrit-pw") && !r.stderr.contains("sekrit-pw"), "\(r.stdout)")
        #expect(r.stdout.contains("primary_conninfo") && r.stdout.contains("password=<redacted>"), "\(r.stdout)")
        #expect(FileManager.default.fileExists(atPath: dir + "/data/standby.signal"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/recovery.signal"))

        let standby = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { standby.destroy() }
        try standby.start()
        try c.psql("INSERT INTO marks VALUES (42)")
        let deadline = Date().addingTimeInterval(120)
        var seen = ""
        while Date() < deadline {
            seen = (try? standby.psql("SELECT coalesce(string_agg(n::text, ','), '') FROM marks")) ?? ""
            if seen == "42" { break }
            usleep(200_000)
        }
        #expect(seen == "42", "the standby did not receive the primary's row: \(standby.log.suffix(2000))")
        #expect(try standby.psql("SELECT pg_is_in_recovery()") == "t")
        #expect(try standby.psql("SELECT status FROM pg_stat_wal_receiver") == "streaming")
        #expect(
            try c.psql("SELECT state FROM pg_stat_replication WHERE application_name = 'cairnstandby'") == "streaming")
        #expect(try c.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'cairn_standby'") == "t")
    }
}

/// `keep_scratch: true`: the first drill restores into the kept folder and leaves it (stopped); the next one
/// restores onto it with a delta restore and records the mode and what it rewrote.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct KeptScratchDrillTests {
    @Test func theNextDrillRewritesOnlyWhatChanged() throws {
        let c = try DrillTests.makeCluster("drill-kept", repo: .s3)
        defer { c.destroy() }
        let policy = c.dir + "/kept.yaml"
        try "backup: latest\ntarget: end\nscratch_directory: \(c.dir)/drills\nkeep_scratch: true\n".write(
            toFile: policy, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(policy)")
        func drill() throws -> [String: Any] {
            let r = try c.cairn(["drill", "--policy", policy, "--json"])
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        }
        let first = try drill()
        #expect(first["restore_mode"] as? String == "full" && first["bytes_rewritten"] == nil, "\(first)")
        let kept = c.dir + "/drills/kept/data"
        #expect(FileManager.default.fileExists(atPath: kept + "/PG_VERSION"), "the scratch folder is kept")
        #expect(!FileManager.default.fileExists(atPath: kept + "/postmaster.pid"), "and its server stopped")

        try c.psql("UPDATE orders SET item = item || ' changed' WHERE id <= 20")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        let second = try drill()
        #expect(second["verdict"] as? String == "pass" && second["restore_mode"] as? String == "delta", "\(second)")
        let rewritten = (second["bytes_rewritten"] as? NSNumber)?.int64Value ?? -1
        let restored = (second["bytes_restored"] as? NSNumber)?.int64Value ?? 0
        #expect(rewritten > 0 && rewritten < restored, "rewrote \(rewritten) of \(restored)")
    }
}
