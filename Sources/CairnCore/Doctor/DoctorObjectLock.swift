import CairnBase
import CairnStorage
import Foundation

/// `cairn doctor`'s look at S3 Object Lock: what `repository.object_lock` asks for and what the bucket has.
public struct ObjectLockFacts: Sendable {
    /// The configured mode (`GOVERNANCE`, `COMPLIANCE`), nil when objects are written without a lock.
    public var mode: String?
    /// Seconds each object stays locked from its write (recovery window + margin).
    public var period: Double = 0
    /// `test_short_periods: true` is set.
    public var testShortPeriods = false
    /// What GetObjectLockConfiguration and GetBucketVersioning said (nil when they were not asked or failed).
    public var bucket: S3BucketProtection?
    /// Why the bucket could not be asked.
    public var error: String?

    public init(mode: String?, period: Double = 0, testShortPeriods: Bool = false) {
        self.mode = mode
        self.period = period
        self.testShortPeriods = testShortPeriods
    }
}

extension DoctorFacts {
    /// Asks the bucket (the S3 driver under any encryption layer) whether it has Object Lock and versioning, when
    /// `repository.object_lock` is set; never throws (a failure is recorded).
    public mutating func gatherObjectLock(_ driver: S3Repository, _ facts: ObjectLockFacts) {
        objectLock = facts
        guard facts.mode != nil else { return }
        do { objectLock?.bucket = try driver.bucketProtection() } catch {
            objectLock?.error = describeError(error).message
        }
    }
}

extension Doctor.Review {
    /// Object Lock as configured against the bucket's settings (S3 repositories only).
    mutating func objectLock() {
        guard let lock = f.objectLock else { return }
        guard let mode = lock.mode?.lowercased() else {
            add(
                "object_lock", .info,
                "objects are written without S3 Object Lock: stolen credentials or a mistaken delete can remove backups",
                fix: "set repository.object_lock (mode: governance or compliance) on a bucket with Object Lock enabled")
            return
        }
        let enable =
            "enable Object Lock on the bucket (aws s3api put-object-lock-configuration; versioning must be Enabled), or create one with --object-lock-enabled-for-bucket"
        if let e = lock.error {
            add(
                "object_lock", .warning, "the bucket's Object Lock configuration could not be read: \(e)",
                fix: "grant s3:GetBucketObjectLockConfiguration and s3:GetBucketVersioning, then run doctor again")
        } else if let b = lock.bucket, !b.objectLockEnabled || b.versioning != "Enabled" {
            let has =
                "Object Lock \(b.objectLockEnabled ? "enabled" : "not enabled"), versioning \(b.versioning ?? "never enabled")"
            add(
                "object_lock", .critical,
                "repository.object_lock is set (\(mode)) but the bucket has \(has): writes with a retention are refused, so backups and WAL archiving fail",
                fix: enable)
        } else if let b = lock.bucket {
            add(
                "object_lock", .ok,
                "the bucket has Object Lock and versioning enabled; every object Cairn keeps is locked (\(mode)) for \(Units.formatDuration(lock.period)) from its write"
            )
            if let rule = b.defaultRetention {
                add(
                    "object_lock_default", .warning,
                    "the bucket has a default retention (\(rule)): it also locks the objects Cairn deletes in its course (job locks, leases, probes, pins), so releasing them fails",
                    fix: "remove the bucket's default retention rule; Cairn sets each object's retention itself")
            }
        }
        if lock.testShortPeriods {
            add(
                "object_lock_short", .warning,
                "repository.object_lock.test_short_periods is on: locks may last only seconds beyond the recovery window",
                fix: "remove test_short_periods outside tests (the margin must then be at least 1d)")
        }
    }
}
