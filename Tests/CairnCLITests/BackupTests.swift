import CairnBase
import Foundation
import Testing
import TestSupport

/// `cairn backup` beyond the happy path: interruption, tablespaces, many bundles.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct BackupTests {
    static func digest(_ c: ScratchCluster, _ table: String) throws -> String {
        try c.psql("SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM \(table) t")
    }

    /// `kill -9` in the middle of uploading: nothing that list or restore would take for a backup, and the next
    /// backup (and a restore from it) works.
    @Test(arguments: RepoKind.allCases)
    func killedBackupCommitsNothing(repo: RepoKind) throws {
        let c = try ScratchCluster(name: "backupkill-\(repo)") {
            try TestRepository.config(repo, dir: $0, conninfo: $1, limits: ["bundle_size: 2MiB"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell("runuser -u postgres -- \(c.bin)/pgbench -i -q -s 6 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1")
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

    @Test func tablespacesAreBackedUpAndRemapped() throws {
        let c = try ScratchCluster(name: "tablespace") { try TestRepository.config(.s3, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell("mkdir -p \(c.dir)/ts1 && chown postgres \(c.dir)/ts1")
        try c.psql("CREATE TABLESPACE ts1 LOCATION '\(c.dir)/ts1'")
        try c.psql("CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g")
        try c.psql("CREATE INDEX ON in_ts (v) TABLESPACE ts1")
        let oid = try c.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
        let expected = try Self.digest(c, "in_ts")
        let b = try c.cairn(["backup", "--json"])
        #expect(b.status == 0, "\(b.stderr)")
        try c.switchAndWaitForArchive()

        // The original location is in use: a restore that would write there is refused.
        let dir = c.dir + "/restored"
        try Run.shell("mkdir -p \(dir) && chown postgres \(dir)")
        let refused = try c.cairn(["restore", "--target-dir", dir + "/data"])
        #expect(refused.status == ErrorCode.restoreDirNotEmpty.exitCode, "\(refused.stderr)")
        #expect(refused.stderr.contains("\(c.dir)/ts1"))

        let ok = try c.cairn(["restore", "--target-dir", dir + "/data", "--archive-mode", "off",
                              "--tablespace-map", "\(oid)=\(dir)/ts1-new"])
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
