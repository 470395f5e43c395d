import CairnStorage
import Foundation

/// How long S3 Object Lock keeps what Cairn writes (`repository.object_lock`).
///
/// Every object gets a retain-until date of its write time plus the recovery window plus a margin: the window is
/// how long retention keeps an object at the least (a backup or a WAL segment stays needed at least until it
/// leaves the window), the margin covers a late `expire`, a full backup kept longer as the window's anchor, and a
/// window lengthened later. Logical backups, drill records and reports kept longer by retention stay unlocked
/// after that period. Objects Cairn deletes in its normal course (job locks, leases, probes, pins, the verify
/// state) are written without a lock: a lock would keep them from being released.
public enum ObjectLockPolicy {
    /// The shortest margin a production configuration may set (`test_short_periods` lifts it, for tests).
    public static let minimumMargin: Double = 86400

    /// Seconds from a write to its retain-until date.
    public static func period(retention: RetentionPolicy, margin: Double) -> Double {
        retention.recoveryWindow + margin
    }

    /// Keys written without a lock.
    public static func isExempt(_ key: String) -> Bool {
        key.hasPrefix(Layout.locksPrefix) || key.hasPrefix(Layout.leasesPrefix) || key.hasPrefix(Layout.probePrefix)
            || key == Layout.verifyStateKey || (key.hasPrefix(Layout.backupsPrefix) && key.hasSuffix("/pin.json"))
    }

    /// The S3 driver's lock for `mode`, the configured retention and margin.
    public static func s3Lock(mode: S3ObjectLock.Mode, retention: RetentionPolicy, margin: Double) -> S3ObjectLock {
        S3ObjectLock(mode: mode, period: period(retention: retention, margin: margin), exempt: isExempt)
    }
}
