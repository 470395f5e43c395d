import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

/// Issue #25 on the commit of a backup: a manifest write whose reply is lost deletes nothing that a committed
/// manifest needs, and a backup whose objects disappeared while it waited for WAL is not committed.
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct BackupCommitTests {
    static func uncommitted(_ c: ScratchCluster) throws -> Bool {
        try c.cairn(["info", "--json"]).stdout.contains("\"uncommitted_backups\" : [\n    \"")
    }

    /// Starts `cairn backup` as postgres in the background, its stderr into `err`.
    static func spawnBackup(_ c: ScratchCluster, stderr err: String) throws -> pid_t {
        try Run.spawn(
            "/bin/bash",
            [
                "-c",
                "exec /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups "
                    + "\(Run.installedCairn) --config \(c.config!) backup 2>\(err)"
            ])
    }

    static func backups(_ c: ScratchCluster) throws -> Int {
        try c.cairn(["list", "--json"]).stdout.components(separatedBy: "\"id\" :").count - 1
    }

    /// Physical backups to S3 through the fault proxy, faults aimed at `backups/<id>/manifest.json` only (WAL is
    /// archived directly): a lost reply commits, an undecidable outcome keeps everything, and so does a refused write (it may still land).
    @Test func manifestWriteWithALostReplyCommitsAndKeepsTheData() throws {
        let proxy = try FaultProxy()
        let prefix = TestEnvironment.uniqueName("commit")
        var faulty = ""
        let c = try ScratchCluster(name: "commit") { dir, conninfo in
            faulty = try CampaignConfig.s3(
                dir: dir, name: "faulty.yaml", conninfo: conninfo, endpoint: proxy.endpoint.absoluteString,
                prefix: prefix, limits: ["request_timeout: 30s", "retries: 2"])
            return try CampaignConfig.s3(
                dir: dir, conninfo: conninfo, endpoint: TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT"), prefix: prefix)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 1)
        let putManifest =
            #"{"match": {"method": "PUT", "path_regex": "/manifest\\.json$"}, "times": -1, "action": {"forward_then_status": 500}}"#
        func backup(_ rules: String) throws -> ProcessResult {
            try proxy.reset()
            try proxy.script(rules)
            return try Run.cairnAsPostgres(["--config", faulty, "--log-level", "info", "backup"])
        }

        // Stored, but every reply (and every retry's 412) replaced by a 500: committed, and said so.
        let lost = try backup(putManifest)
        #expect(lost.status == 0, "\(lost.stderr)")
        #expect(lost.stderr.contains("reply to the manifest write was lost"), "\(lost.stderr)")
        #expect(try Self.backups(c) == 1)
        let verified = try c.cairn(["verify"])
        #expect(
            verified.status == 0, "every bundle of the committed backup is there: \(verified.stdout)\(verified.stderr)")
        // The same for a logical backup.
        try proxy.reset()
        try proxy.script(putManifest)
        let logical = try Run.cairnAsPostgres(["--config", faulty, "--log-level", "info", "backup", "--type", "logical"]
        )
        #expect(
            logical.status == 0 && logical.stderr.contains("reply to the manifest write was lost"), "\(logical.stderr)")
        try proxy.reset()
        #expect(try Self.backups(c) == 2)
        #expect(try c.cairn(["verify"]).status == 0)

        // Stored, and the read-back fails too: nothing is deleted, the outcome is reported as unknown.
        let unknown = try backup(
            "[\(putManifest), "
                + #"{"match": {"path_regex": "/manifest\\.json$"}, "times": -1, "action": {"status": 503}}]"#)
        #expect(unknown.status == ErrorCode.backupCommitUnknown.exitCode, "\(unknown.stderr)")
        #expect(
            unknown.stderr.contains("[backup.commit-unknown]") && unknown.stderr.contains("cairn list"),
            "\(unknown.stderr)")
        try proxy.reset()
        #expect(try Self.backups(c) == 3, "the manifest landed and its backup kept every object")
        #expect(try c.cairn(["verify"]).status == 0)

        // Refused and not stored (so far): not committed, and its objects stay for expire, since a write whose
        // reply was lost may still land.
        let refused = try backup(
            #"{"match": {"method": "PUT", "path_regex": "/manifest\\.json$"}, "times": -1, "action": {"status": 503}}"#)
        #expect(refused.status != 0 && !refused.stderr.contains("[backup.commit-unknown]"), "\(refused.stderr)")
        #expect(refused.stderr.contains("left for `cairn expire`"), "\(refused.stderr)")
        try proxy.reset()
        #expect(try Self.backups(c) == 3)
        #expect(try Self.uncommitted(c), "the uncommitted objects are left for expire")
    }

    /// A bundle deleted (as a concurrent `cairn expire` would, past orphan_safety_age) while the backup waits for
    /// its WAL: the backup fails naming the object, and writes no manifest.
    @Test func aBundleRemovedWhileWaitingForWALIsCaughtBeforeTheCommit() throws {
        let c = try ScratchCluster(name: "commit-gone") {
            try TestRepository.config(.local, dir: $0, conninfo: $1, limits: ["bundle_size: 1MiB"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 1)
        try c.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
        try c.psql("SELECT pg_reload_conf()")

        let err = c.dir + "/backup.err"
        let pid = try Self.spawnBackup(c, stderr: err)
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); Run.wait(pid) } }
        // The PostgreSQL manifest is stored last: once it is there, the backup waits for WAL.
        let repo = c.dir + "/repo/backups"
        var id: String?
        for _ in 0..<600 where id == nil {
            id = (try? FileManager.default.contentsOfDirectory(atPath: repo))?.first {
                FileManager.default.fileExists(atPath: "\(repo)/\($0)/backup_manifest.zst")
            }
            if id == nil { usleep(100_000) }
        }
        guard let id else { throw TestFailure("the backup did not reach its wait for WAL") }
        let bundles = try FileManager.default.contentsOfDirectory(atPath: "\(repo)/\(id)/base").filter {
            $0.hasSuffix(".tar.zst")
        }.sorted()
        #expect(bundles.count > 1, "\(bundles)")
        let victim = try #require(bundles.first)
        try FileManager.default.removeItem(atPath: "\(repo)/\(id)/base/\(victim)")
        try c.psql("ALTER SYSTEM RESET archive_command")
        try c.psql("SELECT pg_reload_conf()")

        let status = Run.wait(pid)
        reaped = true
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(status == ErrorCode.backupFailed.exitCode, "\(stderr)")
        #expect(stderr.contains("base/\(victim) (missing)") && stderr.contains("orphan_safety_age"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(repo)/\(id)/manifest.json"))
        #expect(try Self.backups(c) == 0)
    }

    /// Two runs that both believe they hold the backup lock (an S3 store whose create-only write is not atomic let
    /// another run's lock replace this one's): the backup works while its lock settles and reads it back before
    /// the commit, so it commits nothing, deletes what it wrote, and leaves the other run's lock alone.
    @Test func aBackupWhoseLockWasTakenOverCommitsNothing() throws {
        let prefix = TestEnvironment.uniqueName("lock")
        let c = try ScratchCluster(name: "lock-lost") { dir, conninfo in
            try CampaignConfig.s3(
                dir: dir, conninfo: conninfo, endpoint: TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT"), prefix: prefix)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 1)
        try c.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
        try c.psql("SELECT pg_reload_conf()")
        let s3 = S3Repository(settings: TestEnvironment.s3Settings(prefix: prefix))

        let err = c.dir + "/backup.err"
        let pid = try Self.spawnBackup(c, stderr: err)
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); Run.wait(pid) } }
        // The PostgreSQL manifest is stored last: once it is there, the backup waits for WAL.
        var waiting = false
        for _ in 0..<600 where !waiting {
            waiting = try s3.list(prefix: "backups/").contains { $0.key.hasSuffix("/backup_manifest.zst") }
            if !waiting { usleep(100_000) }
        }
        #expect(waiting, "the backup did not reach its wait for WAL")
        let other = RepositoryLock.Holder(
            job: "backup-full", host: "other-host", pid: 42, acquired: Date(), expires: Date().addingTimeInterval(600))
        _ = try s3.put(RepositoryLock.key("backup-full"), try SealedDocument.seal(other), options: .overwrite)
        try c.psql("ALTER SYSTEM RESET archive_command")
        try c.psql("SELECT pg_reload_conf()")

        let status = Run.wait(pid)
        reaped = true
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(status == ErrorCode.repoLocked.exitCode, "\(stderr)")
        #expect(stderr.contains("another run took the lock") && stderr.contains("other-host"), "\(stderr)")
        #expect(try Self.backups(c) == 0)
        #expect(try s3.list(prefix: "backups/").isEmpty, "the backup's objects are deleted")
        #expect(try RepositoryLock.current("backup-full", repo: s3)?.host == "other-host")
    }
}
