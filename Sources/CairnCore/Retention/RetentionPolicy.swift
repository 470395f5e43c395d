import Foundation

/// What `cairn expire` keeps (`policies/retention.yaml`).
public struct RetentionPolicy: Sendable, Equatable, Codable {
    /// Every point in time this far back from now stays restorable.
    public var recoveryWindow: Double
    /// The newest full backups always kept, whatever their age (at least 1: the last full backup is never expired).
    public var minFullBackups: Int
    /// How long logical backups are kept.
    public var logicalRetention: Double
    /// How long drill records are kept.
    public var drillRetention: Double
    /// How long restore-verification reports are kept.
    public var reportRetention: Double
    /// Objects of uncommitted backups younger than this are left alone (a backup may be running).
    public var orphanSafetyAge: Double

    public init(
        recoveryWindow: Double = 30 * 86400, minFullBackups: Int = 1, logicalRetention: Double = 90 * 86400,
        drillRetention: Double = 400 * 86400, reportRetention: Double = 800 * 86400, orphanSafetyAge: Double = 6 * 3600
    ) {
        self.recoveryWindow = recoveryWindow
        self.minFullBackups = max(1, minFullBackups)
        self.logicalRetention = logicalRetention
        self.drillRetention = drillRetention
        self.reportRetention = reportRetention
        self.orphanSafetyAge = orphanSafetyAge
    }

    enum CodingKeys: String, CodingKey {
        case recoveryWindow = "recovery_window_seconds"
        case minFullBackups = "min_full_backups"
        case logicalRetention = "logical_retention_seconds"
        case drillRetention = "drill_retention_seconds"
        case reportRetention = "report_retention_seconds"
        case orphanSafetyAge = "orphan_safety_age_seconds"
    }
}
