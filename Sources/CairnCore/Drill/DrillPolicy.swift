import Foundation

/// How `cairn drill` chooses what to prove and what it checks (`policies/drills.yaml`).
public struct DrillPolicy: Sendable, Equatable {
    /// Which backup: the newest, or a random one inside the recovery window.
    public enum BackupChoice: String, Sendable, CaseIterable { case latest, random }
    /// Where to recover to: a random point the backup can reach, the backup's end, or the end of the archive.
    public enum TargetChoice: String, Sendable, CaseIterable { case random, end, latest }

    /// A SQL assertion: the query must return true in every database it applies to.
    public struct Assertion: Sendable, Equatable, Codable {
        public var name: String
        /// A database name, or `*` for every database that accepts connections.
        public var database: String
        public var sql: String

        public init(name: String, database: String, sql: String) {
            self.name = name
            self.database = database
            self.sql = sql
        }
    }

    /// What the monthly report requires before it calls a month VERIFIED.
    public struct Verification: Sendable, Equatable {
        /// Each completed day since the first backup must be recoverable for at least this share of it (0…1).
        public var dayCoverage: Double = 1
        /// Never longer than this (seconds) without a passing drill, from the first backup on.
        public var drillInterval: Double = 7 * 86400

        public init(dayCoverage: Double = 1, drillInterval: Double = 7 * 86400) {
            self.dayCoverage = dayCoverage
            self.drillInterval = drillInterval
        }
    }

    public var backup: BackupChoice = .latest
    public var target: TargetChoice = .random
    /// Drills restore under this folder (one subfolder per drill, always removed afterwards, unless `keepScratch`).
    public var scratchDirectory: String = "/var/tmp/cairn-drills"
    /// Physical drills restore into one kept folder (``DrillOperation/keptFolderName`` under `scratchDirectory`),
    /// stopped but not removed afterwards; the next drill restores onto it with a delta restore, so it costs what
    /// changed. Logical drills always start from an empty scratch cluster.
    public var keepScratch = false
    /// The whole drill must finish within this many seconds.
    public var timeout: Double = 3600
    public var verifyBackup = true
    public var amcheck = true
    public var readAllTables = true
    public var assertions: [Assertion] = []
    public var verification = Verification()

    public init() {}
}
