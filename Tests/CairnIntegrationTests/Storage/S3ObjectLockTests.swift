import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnStorage

/// The S3 driver with Object Lock, on each test S3 server's lock-enabled bucket: writes carry a signed retention,
/// a delete leaves a locked object as it was (and says so), and once the lock has passed the delete removes every
/// version, leaving nothing behind.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct S3ObjectLockTests {
    static func repository(_ server: S3Server, period: Double) -> S3Repository {
        var s = TestEnvironment.s3Settings(bucket: server.lockBucket, server: server)
        s.objectLock = S3ObjectLock(mode: .governance, period: period, exempt: { $0.hasPrefix("locks/") })
        return S3Repository(settings: s)
    }

    static func code(_ body: () throws -> Void) -> CairnError? {
        do { try body(); return nil } catch let e as CairnError { return e } catch { return nil }
    }

    @Test(arguments: S3Server.tested)
    func aLockedObjectSurvivesDeletesUntilItsLockPassesThenNothingIsLeft(server: S3Server) throws {
        let repo = Self.repository(server, period: 4)
        let small = Array("wal segment".utf8)
        let big = (0..<(11 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // multipart: 3 parts of 5 MiB
        let started = Date()
        try repo.put("wal/a.zst", small, options: .createOnly)
        let w = try repo.makeWriter("backups/b/base-1.tar.zst", options: .createOnly)
        try big.withUnsafeBytes { try w.write($0) }
        _ = try w.finish()
        try repo.put("locks/backup.json", [1], options: .createOnly)
        let keys = ["wal/a.zst", "backups/b/base-1.tar.zst"]
        for k in keys {
            let until = try repo.retainUntil(try #require(repo.listVersions(prefix: k).first))
            #expect(
                until != nil && until! > started.addingTimeInterval(3),
                "\(k) is locked about 4 s: \(String(describing: until))")
        }

        // The exempt key goes at once, every version of it.
        try repo.delete(["locks/backup.json"])
        #expect(try repo.listVersions(prefix: "locks/").isEmpty)

        // A locked object: the delete is refused as a lock, the object reads and lists as before.
        let refused = Self.code { try repo.delete(keys) }
        #expect(refused?.code == .repoObjectLocked, "\(String(describing: refused))")
        #expect((refused?.cause as? LockedObjects)?.keys == keys.sorted())
        #expect(refused?.hint?.contains("retain-until") == true)
        #expect(try repo.getBytes("wal/a.zst") == small)
        #expect(try repo.getBytes("backups/b/base-1.tar.zst") == big)
        #expect(try repo.list(prefix: "").map(\.key) == keys.sorted())
        #expect(try repo.listVersions(prefix: "").allSatisfy { !$0.isDeleteMarker }, "no delete marker hides them")

        // Once the lock has passed, the same delete removes every version: nothing is left behind.
        let until = (refused?.cause as? LockedObjects)?.until ?? Date()
        Thread.sleep(forTimeInterval: max(0, until.timeIntervalSinceNow) + 1.5)
        try repo.delete(keys)
        #expect(try repo.list(prefix: "").isEmpty)
        #expect(try repo.listVersions(prefix: "").isEmpty)
    }

    @Test(arguments: S3Server.tested)
    func theBucketSaysWhetherItHasObjectLockAndVersioning(server: S3Server) throws {
        let locked = try Self.repository(server, period: 1).bucketProtection()
        #expect(locked.objectLockEnabled && locked.versioning == "Enabled", "\(locked)")
        let plain = try S3Repository(settings: TestEnvironment.s3Settings(server: server)).bucketProtection()
        #expect(!plain.objectLockEnabled && plain.versioning == nil, "\(plain)")
    }

    @Test(arguments: S3Server.tested)
    func aLockedWriteToABucketWithoutObjectLockFailsWithAHint(server: S3Server) throws {
        var s = TestEnvironment.s3Settings(server: server)
        s.objectLock = S3ObjectLock(mode: .governance, period: 60)
        let e = Self.code { try S3Repository(settings: s).put("wal/x", [1], options: .createOnly) }
        #expect(e?.code == .repoProtocol, "\(String(describing: e))")
        #expect(e?.hint?.contains("enable Object Lock on bucket") == true, "\(String(describing: e))")
    }
}
