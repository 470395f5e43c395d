import CairnBase
import CairnCore
import Foundation
import TestSupport
import Testing

@testable import CairnStorage

/// `repository.object_lock` as a user runs it, on each test S3 server's Object Lock bucket (moto 5.2 and SeaweedFS enforce it): a
/// locked backup survives `expire` under a deliberately shortened retention policy, a direct delete through the S3
/// driver and one of its version through the aws CLI (`aws s3 rm` only hides it behind a delete marker, which can
/// be removed), until its lock passes; then `expire` deletes it and leaves no version behind. Locks here last
/// seconds (`test_short_periods`), so the test sees them pass.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct ObjectLockTests {
    /// Lock = recovery window (1 s) + margin.
    static let margin = 30.0

    static func cluster(_ name: String, _ server: S3Server, bucket: String, lock: Bool = true) throws -> ScratchCluster
    {
        try ScratchCluster(name: "\(name)-\(server)") { dir, conninfo in
            try TestRepository.config(
                server == .moto ? .s3 : .seaweed, dir: dir, conninfo: conninfo, limits: ["bundle_size: 1MiB"],
                extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 2\n  orphan_safety_age: 1m",
                bucket: bucket,
                repository: lock
                    ? ["object_lock:", "  mode: governance", "  margin: \(Int(margin))s", "  test_short_periods: true"]
                    : [])
        }
    }

    /// The cluster's repository through a driver of our own (plain HTTP), with the same lock.
    static func direct(_ c: ScratchCluster, _ server: S3Server) throws -> S3Repository {
        let text = try String(contentsOfFile: c.config!, encoding: .utf8)
        let prefix = try #require(
            text.split(separator: "\n").first { $0.contains("prefix:") }?.split(separator: ":").last)
        var s = TestEnvironment.s3Settings(
            prefix: prefix.trimmingCharacters(in: .whitespaces), bucket: server.lockBucket, server: server)
        s.objectLock = S3ObjectLock(mode: .governance, period: 1 + margin)
        return S3Repository(settings: s)
    }

    static func backupId(_ r: ProcessResult) throws -> String {
        try #require(r.stdout.split(separator: "\"").first { $0.hasSuffix("F") && $0.count == 16 }.map(String.init))
    }

    /// On moto and on SeaweedFS (whose Object Lock, as far as this goes, behaves as AWS documents it).
    @Test(arguments: S3Server.tested)
    func aLockedBackupSurvivesExpireAndDirectDeletesUntilItsLockPasses(server: S3Server) throws {
        let c = try Self.cluster("object-lock", server, bucket: server.lockBucket)
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 20000) g")
        let b1 = try c.cairn(["backup", "--json"])
        #expect(b1.status == 0, "\(b1.stderr)")
        let id1 = try Self.backupId(b1)
        try c.psql("INSERT INTO t SELECT g, 'second' FROM generate_series(1, 100) g")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        let repo = try Self.direct(c, server)
        let objects = try repo.list(prefix: "backups/\(id1)/").map(\.key)
        #expect(objects.count > 2)

        // The configured policy keeps both full backups. A deliberately shortened one (one full backup) wants the
        // first gone: its lock keeps it, whole, and expire succeeds and says so.
        #expect(try c.cairn(["expire"]).stdout.contains("keep   backup \(id1)"))
        let shortened = c.dir + "/shortened.yaml"
        try "recovery_window: 1s\nmin_full_backups: 1\n".write(toFile: shortened, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(shortened)")
        let kept = try c.cairn(["expire", "--policy", shortened])
        #expect(kept.status == 0, "\(kept.stdout)\(kept.stderr)")
        #expect(kept.stdout.contains("kept under Object Lock: backup \(id1)"), "\(kept.stdout)")
        #expect(try repo.list(prefix: "backups/\(id1)/").map(\.key) == objects)
        #expect(try c.cairn(["list"]).stdout.contains(id1))

        // A direct delete through the driver is refused as a lock; a version delete through the aws CLI is refused.
        let manifest = Layout.manifestKey(id1)
        #expect(Self.errorCode { try repo.delete([manifest]) } == .repoObjectLocked)
        let version = try #require(repo.listVersions(prefix: manifest).first?.versionId)
        let aws = try Self.aws(
            server,
            [
                "s3api", "delete-object", "--bucket", server.lockBucket, "--key", repo.client.fullKey(manifest),
                "--version-id", version
            ])
        #expect(aws.status != 0 && aws.stderr.contains("AccessDenied"), "\(aws.stdout)\(aws.stderr)")
        // `aws s3 rm` only hides the manifest behind a delete marker; deleting the marker brings the backup back.
        let rm = try Self.aws(server, ["s3", "rm", "s3://\(server.lockBucket)/\(repo.client.fullKey(manifest))"])
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(!(try c.cairn(["list"]).stdout.contains(id1)))
        let marker = try #require(repo.listVersions(prefix: manifest).first { $0.isDeleteMarker }?.versionId)
        let undo = try Self.aws(
            server,
            [
                "s3api", "delete-object", "--bucket", server.lockBucket, "--key", repo.client.fullKey(manifest),
                "--version-id", marker
            ])
        #expect(undo.status == 0, "\(undo.stderr)")
        #expect(try c.cairn(["list"]).stdout.contains(id1))
        let verified = try c.cairn(["verify"])
        #expect(verified.status == 0, "the locked backup still verifies: \(verified.stdout)\(verified.stderr)")

        // Once the lock has passed, expire deletes the backup and every version of its objects.
        Thread.sleep(forTimeInterval: Self.margin + 3)
        let gone = try c.cairn(["expire", "--json", "--policy", shortened])
        #expect(gone.status == 0, "\(gone.stdout)\(gone.stderr)")
        #expect(gone.stdout.contains("\"locked_objects\" : 0"), "\(gone.stdout)")
        #expect(try repo.list(prefix: "backups/\(id1)/").isEmpty)
        #expect(try repo.listVersions(prefix: "backups/\(id1)/").isEmpty, "no version or delete marker is left")
        let listed = try c.cairn(["list"]).stdout
        #expect(!listed.contains(id1))
        let r = try c.restoreAndStart()
        defer { r.destroy() }
        #expect(try r.psql("SELECT count(*) FROM t") == "20100")
    }

    @Test(arguments: S3Server.tested)
    func doctorReportsABucketWithoutObjectLock(server: S3Server) throws {
        let c = try Self.cluster("object-lock-doctor", server, bucket: server.bucket)
        defer { c.destroy() }
        let d = try c.cairn(["doctor"])
        #expect(d.status == 2, "\(d.stdout)\(d.stderr)")
        #expect(
            d.stdout.contains(
                "CRITICAL  object_lock: repository.object_lock is set (governance) but the bucket has Object Lock not enabled, versioning never enabled"
            ),
            "\(d.stdout)")
        #expect(d.stdout.contains("WARNING   object_lock_short:"), "\(d.stdout)")
        let b = try c.cairn(["init"])
        #expect(b.status == ErrorCode.repoProtocol.exitCode && b.stderr.contains("Object Lock"), "\(b.stderr)")

        let good = try Self.cluster("object-lock-doctor-ok", server, bucket: server.lockBucket)
        defer { good.destroy() }
        #expect(try good.cairn(["init"]).status == 0)
        let ok = try good.cairn(["doctor"])
        #expect(
            ok.stdout.contains("OK        object_lock: the bucket has Object Lock and versioning enabled"),
            "\(ok.stdout)")
    }

    static func errorCode(_ body: () throws -> Void) -> ErrorCode? {
        do { try body(); return nil } catch let e as CairnError { return e.code } catch { return .internal }
    }

    static func aws(_ server: S3Server, _ args: [String]) throws -> ProcessResult {
        try Run.program(
            "/usr/bin/env",
            ["aws", "--endpoint-url", server.endpoint] + args,
            environment: [
                "PATH": TestEnvironment.value("PATH"), "AWS_ACCESS_KEY_ID": server.accessKey,
                "AWS_SECRET_ACCESS_KEY": server.secretKey, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_MAX_ATTEMPTS": "1",
                "HOME": "/tmp"
            ])
    }
}
