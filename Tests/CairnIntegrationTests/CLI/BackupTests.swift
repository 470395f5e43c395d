import CairnBase
import Foundation
import TestSupport
import Testing

/// `cairn backup` beyond the happy path: interruption, tablespaces, many bundles.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct BackupTests {
    static func digest(_ c: ScratchCluster, _ table: String) throws -> String {
        try c.psql("SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \(table) t")
    }

    /// `kill -9` in the middle of uploading: nothing that list or restore would take for a backup, and the next
    /// backup (and a restore from it) works.
    @Test(arguments: RepoKind.withSeaweed)
    func killedBackupCommitsNothing(repo: RepoKind) throws {
        let c = try ScratchCluster(name: "backupkill-\(repo)") {
            try TestRepository.config(repo, dir: $0, conninfo: $1, limits: ["bundle_size: 2MiB"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 6 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        let pid = try Run.spawnCairnAsPostgres(["--config", c.config!, "backup"])
        var sawUpload = false
        for _ in 0..<300 {
            let info = try c.cairn(["info", "--json"]).stdout
            if info.contains("\"uncommitted_backups\" : [\n    \"") { sawUpload = true; break }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        #expect(Run.wait(pid) == 128 + SIGKILL)
        #expect(sawUpload, "the backup was killed while uploading")
        #expect(try c.cairn(["list", "--json"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]")
        let plan = try c.cairn(["restore", "--dry-run"])
        #expect(plan.status == ErrorCode.backupNotFound.exitCode, "no backup to restore: \(plan.stderr)")

        let expected = try Self.digest(c, "pgbench_accounts")
        let next = try c.cairn(["backup"])
        #expect(next.status == 0, "\(next.stderr)")
        try c.switchAndWaitForArchive()
        let r = try c.restoreAndStart()
        defer { r.destroy() }
        #expect(try Self.digest(r, "pgbench_accounts") == expected)
    }

    /// The files method (cairn reads the data directory) while pgbench writes: the restored copy passes
    /// pg_verifybackup against the PostgreSQL-format manifest, holds nothing PostgreSQL's own base backup leaves
    /// out, and has every row committed before the end of the WAL.
    @Test(arguments: PGMajor.matrix(RepoKind.withSeaweed))
    func fileLevelBackupUnderLoadVerifiesAndRestores(repo: RepoKind, major: PGMajor) throws {
        let c = try ScratchCluster(name: "filebackup-\(repo)-\(major)", major: major) {
            try TestRepository.config(
                repo, dir: $0, conninfo: $1, major: major, limits: ["bundle_size: 4MiB", "parallelism: 3"],
                cluster: ["backup_method: files"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let pgbench = "runuser -u postgres -- \(c.bin)/pgbench -h \(c.socketDir) -p \(c.port) -U postgres"
        try Run.shell("\(pgbench) -i -q -s 4 postgres >/dev/null 2>&1")
        try c.psql("CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 10000) g")
        let unlogged = try c.psql("SELECT pg_relation_filepath('scratch')")
        try Run.shell("\(pgbench) -T 8 -c 2 postgres >/dev/null 2>&1 & echo $! > \(c.dir)/pgbench.pid")
        let b = try c.cairn(["--log-level", "info", "backup"])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stderr.contains("backup started id=") && b.stderr.contains("method=files"), "\(b.stderr)")
        try Run.shell("while kill -0 $(cat \(c.dir)/pgbench.pid) 2>/dev/null; do sleep 0.2; done")
        let expected =
            try Self.digest(c, "pgbench_accounts") + "/" + (try c.psql("SELECT count(*) FROM pgbench_history"))
        try c.switchAndWaitForArchive()
        // Every stored object of the backup and the WAL of this major reads back whole.
        let verified = try c.cairn(["verify", "--full"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")

        let dir = c.dir + "/restored"
        try Run.shell("mkdir -p \(dir) && chown postgres \(dir)")
        let ok = try c.cairn(["restore", "--target-dir", dir + "/data", "--archive-mode", "off"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let verify = try Run.shell(
            "runuser -u postgres -- \(c.bin)/pg_verifybackup --no-parse-wal \(dir)/data 2>&1", check: false)
        #expect(verify.status == 0, "\(verify.stdout)")
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: dir + "/data/postmaster.pid"))
        #expect(!fm.fileExists(atPath: dir + "/data/" + unlogged), "an unlogged relation's main fork is not copied")
        #expect(fm.fileExists(atPath: dir + "/data/" + unlogged + "_init"))
        // 17+ also has pg_wal/summaries (WAL summaries, summarize_wal), sent empty as BASE_BACKUP sends it; the
        // restore fetched the backup's own WAL into its spool (no segment in pg_wal itself).
        #expect(
            try fm.contentsOfDirectory(atPath: dir + "/data/pg_wal").sorted()
                == (major.rawValue >= 17
                    ? ["archive_status", "cairn-prefetch", "summaries"] : ["archive_status", "cairn-prefetch"]))
        // 17+ (manifest version 2): the manifest names the cluster, and pg_verifybackup checked it against pg_control.
        let manifest = try String(contentsOfFile: dir + "/data/backup_manifest", encoding: .utf8)
        #expect(manifest.hasPrefix("{ \"PostgreSQL-Backup-Manifest-Version\": \(major.rawValue >= 17 ? 2 : 1),"))
        #expect(
            manifest.contains(
                "\"System-Identifier\": \(try c.psql("SELECT system_identifier FROM pg_control_system()"))")
                == (major.rawValue >= 17))
        #expect(try String(contentsOfFile: dir + "/data/backup_label", encoding: .utf8).contains("LABEL: cairn "))
        // A damaged file is caught by pg_verifybackup through the manifest's CRC-32C.
        try Run.shell("cp \(dir)/data/PG_VERSION \(dir)/PG_VERSION.ok && printf 14 > \(dir)/data/PG_VERSION")
        let caught = try Run.shell(
            "runuser -u postgres -- \(c.bin)/pg_verifybackup --no-parse-wal \(dir)/data 2>&1", check: false)
        #expect(caught.status != 0 && caught.stdout.contains("PG_VERSION"), "\(caught.stdout)")
        try Run.shell("cp \(dir)/PG_VERSION.ok \(dir)/data/PG_VERSION && chown postgres \(dir)/data/PG_VERSION")

        let r = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { r.destroy() }
        try r.start()
        try r.waitUntilPromoted()
        #expect(
            try Self.digest(r, "pgbench_accounts") + "/" + (try r.psql("SELECT count(*) FROM pgbench_history"))
                == expected)
        #expect(try r.psql("SELECT count(*) FROM scratch") == "0", "unlogged tables come back empty")
    }

    /// A backup user without the files method's privileges: `files` fails with one line and a hint, `auto`
    /// streams instead; once granted, `files` works.
    @Test func theFilesMethodNeedsItsPrivilegesAndAutoFallsBackToStreaming() throws {
        let c = try ScratchCluster(name: "backup-privileges") { dir, conninfo in
            try TestRepository.config(
                .local, dir: dir, conninfo: conninfo.replacingOccurrences(of: "user=postgres", with: "user=backuper"),
                cluster: ["backup_method: files"])
        }
        defer { c.destroy() }
        let conf = c.config!
        try c.psql("CREATE ROLE backuper LOGIN REPLICATION")
        #expect(try c.cairn(["init"]).status == 0)
        let refused = try c.cairn(["backup"])
        #expect(refused.status == ErrorCode.pgConfig.exitCode, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("[pg.config]") && refused.stderr.contains("HINT:")
                && refused.stderr.contains("backup_method: stream"),
            "\(refused.stderr)")

        try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(
            of: "backup_method: files", with: "backup_method: auto"
        )
        .write(toFile: conf, atomically: true, encoding: .utf8)
        let streamed = try c.cairn(["--log-level", "info", "backup"])
        #expect(streamed.status == 0 && streamed.stderr.contains("method=stream"), "\(streamed.stderr)")

        try c.psql("GRANT pg_read_all_settings TO backuper")
        try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(
            of: "backup_method: auto", with: "backup_method: files"
        )
        .write(toFile: conf, atomically: true, encoding: .utf8)
        let denied = try c.cairn(["backup"])
        #expect(
            denied.status == ErrorCode.pgAuth.exitCode && denied.stderr.contains("GRANT EXECUTE"), "\(denied.stderr)")

        try c.psql("GRANT EXECUTE ON FUNCTION pg_backup_start, pg_backup_stop TO backuper")
        let files = try c.cairn(["--log-level", "info", "backup"])
        #expect(files.status == 0 && files.stderr.contains("method=files"), "\(files.stderr)")
        #expect(try c.cairn(["verify"]).status == 0)
    }

    /// Issue #25: on a standby host whose connection reaches the primary, the path the primary reports as its data
    /// directory holds, on this host, a copy with the same system identifier. Here a private mount namespace binds
    /// a lagging standby's data directory over the primary's path: `files` refuses (the postmaster.pid there is the
    /// standby's), `auto` streams from the primary, and the backup restores the primary's data.
    @Test func filesMethodRefusesAnotherServersFiles() throws {
        let c = try ScratchCluster(name: "identity") {
            try TestRepository.config(.local, dir: $0, conninfo: $1, cluster: ["backup_method: files"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        // The copy: a standby with no primary_conninfo, so it stays at the point of its base backup.
        let sdir = c.dir + "/standby"
        try Run.shell("mkdir -p \(sdir) && chown postgres:postgres \(sdir)")
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pg_basebackup -h \(c.socketDir) -p \(c.port) -U postgres -D \(sdir)/data -X stream"
        )
        try Run.shell("runuser -u postgres -- touch \(sdir)/data/standby.signal")
        let s = try ScratchCluster(restoredAt: sdir + "/data", dir: sdir)
        defer { s.destroy() }
        try s.start()
        try c.psql("INSERT INTO t SELECT g FROM generate_series(1001, 5000) g")
        let expected = try Self.digest(c, "t")
        #expect(try s.psql("SELECT count(*) FROM t") == "1000")

        func backupOverTheCopy() throws -> ProcessResult {
            try Run.shell(
                "unshare -m sh -c 'mount --bind \(s.data) \(c.data) && exec runuser -u postgres -- "
                    + "\(Run.installedCairn) --config \(c.config!) --log-level info backup --json'", check: false)
        }
        let refused = try backupOverTheCopy()
        #expect(refused.status == ErrorCode.pgConfig.exitCode, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("may hold another server's files") && refused.stderr.contains("port \(s.port)"),
            "\(refused.stderr)")
        #expect(try c.cairn(["list", "--json"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]")

        try String(contentsOfFile: c.config!, encoding: .utf8).replacingOccurrences(
            of: "backup_method: files", with: "backup_method: auto"
        )
        .write(toFile: c.config!, atomically: true, encoding: .utf8)
        let streamed = try backupOverTheCopy()
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(
            streamed.stderr.contains("method=stream") && streamed.stderr.contains("may hold another server's files"),
            "\(streamed.stderr)")
        try c.switchAndWaitForArchive()
        let r = try c.restoreAndStart()
        defer { r.destroy() }
        #expect(try Self.digest(r, "t") == expected)
    }

    @Test(arguments: BackupMethodCase.allCases, PGMajor.tested)
    func tablespacesAreBackedUpAndRemapped(method: BackupMethodCase, major: PGMajor) throws {
        let c = try ScratchCluster(name: "tablespace-\(method)-\(major)", major: major) {
            try TestRepository.config(.s3, dir: $0, conninfo: $1, major: major, cluster: ["backup_method: \(method)"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell("mkdir -p \(c.dir)/ts1 && chown postgres \(c.dir)/ts1")
        try c.psql("CREATE TABLESPACE ts1 LOCATION '\(c.dir)/ts1'")
        try c.psql(
            "CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g")
        try c.psql("CREATE INDEX ON in_ts (v) TABLESPACE ts1")
        let oid = try c.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
        let expected = try Self.digest(c, "in_ts")
        let b = try c.cairn(["--log-level", "info", "backup", "--json"])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stderr.contains("method=\(method)"), "\(b.stderr)")
        try c.switchAndWaitForArchive()

        // The original location is in use: a restore that would write there is refused.
        let dir = c.dir + "/restored"
        try Run.shell("mkdir -p \(dir) && chown postgres \(dir)")
        let refused = try c.cairn(["restore", "--target-dir", dir + "/data"])
        #expect(refused.status == ErrorCode.restoreDirNotEmpty.exitCode, "\(refused.stderr)")
        #expect(refused.stderr.contains("\(c.dir)/ts1"))

        let ok = try c.cairn([
            "restore", "--target-dir", dir + "/data", "--archive-mode", "off",
            "--tablespace-map", "\(oid)=\(dir)/ts1-new"
        ])
        #expect(ok.status == 0, "\(ok.stderr)")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/data/pg_tblspc/\(oid)")
        #expect(link == "\(dir)/ts1-new")
        let r = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { r.destroy() }
        try r.start()
        try r.waitUntilPromoted()
        #expect(try Self.digest(r, "in_ts") == expected)
        #expect(try r.psql("SELECT pg_tablespace_location(\(oid))") == "\(dir)/ts1-new")
        #expect(try r.psql("SELECT count(*) FROM in_ts WHERE v = md5('777')") == "1")
    }
}

/// The two ways a full backup reads the cluster (`cluster.backup_method`).
enum BackupMethodCase: String, CaseIterable, CustomStringConvertible {
    case files, stream
    var description: String { rawValue }
}
