import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// What `cairn doctor` looks at, gathered from the cluster and the repository. Every part is optional: a part
/// that could not be read is reported by its error instead.
public struct DoctorFacts: Sendable {
    public struct Settings: Sendable, Equatable {
        public var walLevel: String
        public var archiveMode: String
        public var archiveCommand: String
        /// Seconds; 0 when off.
        public var archiveTimeout: Double

        public init(walLevel: String, archiveMode: String, archiveCommand: String, archiveTimeout: Double) {
            self.walLevel = walLevel
            self.archiveMode = archiveMode
            self.archiveCommand = archiveCommand
            self.archiveTimeout = archiveTimeout
        }

        /// Reads the settings over a connection.
        public static func read(_ c: PGConnection) throws -> Settings {
            func show(_ name: String) throws -> String { try c.scalar("SHOW \(name)") ?? "" }
            let timeout =
                try c.scalar("SELECT setting FROM pg_settings WHERE name = 'archive_timeout'").flatMap(Double.init) ?? 0
            return Settings(
                walLevel: try show("wal_level"), archiveMode: try show("archive_mode"),
                archiveCommand: try show("archive_command"), archiveTimeout: timeout)
        }
    }

    /// `pg_stat_archiver`.
    public struct Archiver: Sendable, Equatable {
        public var archivedCount: Int
        public var lastArchivedTime: Date?
        public var failedCount: Int
        public var lastFailedWAL: String?
        public var lastFailedTime: Date?

        public init(
            archivedCount: Int, lastArchivedTime: Date?, failedCount: Int, lastFailedWAL: String?, lastFailedTime: Date?
        ) {
            self.archivedCount = archivedCount
            self.lastArchivedTime = lastArchivedTime
            self.failedCount = failedCount
            self.lastFailedWAL = lastFailedWAL
            self.lastFailedTime = lastFailedTime
        }
    }

    public struct CatalogFacts: Sendable {
        public var newestFull: Date?
        public var oldestBackup: Date?
        public var windowStart: Date?
        public var windowEnd: Date?
        public var lastDrill: (time: Date, passed: Bool, failedCheck: String?)?
        public var lastPassingDrill: Date?
        /// Timelines whose `.history` file is in the repository.
        public var historyTimelines: Set<UInt32> = []
        /// Which history is production's (nil when the catalog could not be read).
        public var lineage: Lineage?

        public init(
            newestFull: Date? = nil, oldestBackup: Date? = nil, windowStart: Date? = nil, windowEnd: Date? = nil,
            lastDrill: (time: Date, passed: Bool, failedCheck: String?)? = nil, lastPassingDrill: Date? = nil
        ) {
            self.newestFull = newestFull
            self.oldestBackup = oldestBackup
            self.windowStart = windowStart
            self.windowEnd = windowEnd
            self.lastDrill = lastDrill
            self.lastPassingDrill = lastPassingDrill
        }
    }

    /// How the repository is reached.
    public enum Transport: Sendable, Equatable {
        case local
        case plainHTTP(host: String)
        case tls
    }

    public var clusterError: String?
    public var settings: Settings?
    /// The server's version, data checksums and WAL summaries (DoctorServerChecks.swift).
    public var server: Server?
    public var archiver: Archiver?
    public var readyWALFiles: Int?
    /// PostgreSQL's clock minus this host's, in seconds.
    public var serverSkew: Double?
    /// The cluster's current timeline (`pg_control_checkpoint()`).
    public var timeline: UInt32?
    public var repositoryError: String?
    public var repositoryLocation = ""
    public var transport = Transport.local
    /// The repository's clock minus this host's, in seconds (from the probe object's modification time).
    public var repositorySkew: Double?
    /// Why the store failed the create-only probe (``RepositoryProbe/proveCreateOnly(repo:)``), nil when it passed.
    public var createOnlyError: String?
    /// S3 Object Lock as configured and as the bucket has it (nil: not an S3 repository, or not gathered).
    public var objectLock: ObjectLockFacts?
    public var catalog: CatalogFacts?
    public var recoveryWindow: Double = 30 * 86400
    public var retentionSource = "defaults"
    /// How often full backups are expected (from the schedule, else a week).
    public var expectedFullInterval: Double = 7 * 86400
    /// The archive_command to suggest.
    public var walPushCommand = "cairn wal-push %p"
    /// With several repositories, for each one but the primary: what it lacks of the primary's (nil: one
    /// repository, the primary itself, or a catalog that could not be read).
    public var lag: Lag?

    /// What a repository lacks of the primary's, with both names (for the fix).
    public struct Lag: Sendable {
        public var name: String
        public var primary: String
        public var lag: RepositoryLag

        public init(name: String, primary: String, lag: RepositoryLag) {
            self.name = name
            self.primary = primary
            self.lag = lag
        }
    }

    public init() {}

    /// Reads the cluster's archiving settings and statistics (each failure recorded, never thrown).
    public mutating func gatherCluster(conninfo: String, dataDirectory: String?, clock: any WallClock) {
        do {
            let c = try PGConnection(conninfo: conninfo)
            settings = try Settings.read(c)
            server = try Server.read(c)
            let before = clock.now()
            let row =
                try c.query(
                    """
                    SELECT archived_count::text, extract(epoch FROM last_archived_time)::text, failed_count::text, last_failed_wal,
                           extract(epoch FROM last_failed_time)::text, extract(epoch FROM clock_timestamp())::text,
                           current_setting('data_directory', true),
                           CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::text
                                ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text END
                    FROM pg_stat_archiver
                    """
                ).first ?? []
            let after = clock.now()
            func date(_ i: Int) -> Date? {
                row.count > i ? row[i].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) } : nil
            }
            archiver = Archiver(
                archivedCount: Int(row.first.flatMap { $0 } ?? "") ?? 0, lastArchivedTime: date(1),
                failedCount: row.count > 2 ? Int(row[2] ?? "") ?? 0 : 0, lastFailedWAL: row.count > 3 ? row[3] : nil,
                lastFailedTime: date(4))
            if let server = date(5) {
                serverSkew = server.timeIntervalSince(before.addingTimeInterval(after.timeIntervalSince(before) / 2))
            }
            timeline = row.count > 7 ? row[7].flatMap { UInt32($0) } : nil
            let dir = dataDirectory ?? (row.count > 6 ? row[6] : nil)
            if let dir, let names = try? FileManager.default.contentsOfDirectory(atPath: dir + "/pg_wal/archive_status")
            {
                readyWALFiles = names.filter { $0.hasSuffix(".ready") }.count
            }
        } catch {
            clusterError = describeError(error).message
        }
    }

    /// Probes the repository (writable, clock) and reads its catalog and drill records; returns the catalog (nil
    /// when the repository could not be read).
    @discardableResult
    public mutating func gatherRepository(_ repo: any Repository, endpoint: URL?, clock: any WallClock) -> Catalog? {
        repositoryLocation = repo.location
        if let endpoint {
            transport = endpoint.scheme == "https" ? .tls : .plainHTTP(host: endpoint.host ?? "")
        }
        do {
            let probe = try RepositoryProbe.run(repo: repo, clock: clock)
            repositorySkew = probe.skewSeconds
            do { try RepositoryProbe.proveCreateOnly(repo: repo) } catch {
                createOnlyError = describeError(error).message
            }
            let catalog = try Catalog.load(from: repo)
            let spans = RecoveryPlanner.merge(RecoveryPlanner.window(catalog))
            let drills = try DrillRecord.loadAll(from: repo)
            self.catalog = CatalogFacts(
                newestFull: catalog.backups.last { $0.kind == .full }?.stop.time,
                oldestBackup: catalog.backups.first?.start.time,
                windowStart: spans.first?.fromTime, windowEnd: spans.last?.toTime,
                lastDrill: drills.last.map { ($0.finished, $0.verdict == .pass, $0.failedCheck) },
                lastPassingDrill: drills.last { $0.verdict == .pass }?.finished)
            self.catalog?.historyTimelines = Set(catalog.wal.histories.keys)
            self.catalog?.lineage = catalog.lineage
            return catalog
        } catch {
            repositoryError = describeError(error).message
            return nil
        }
    }

    /// With several repositories, the drills of all of them count for each: a drill restores from one
    /// repository (the primary, or the next when it fails), and the others hold byte-identical copies that
    /// `verify` checks. Each repository's facts get the newest drill and the newest passing drill of any.
    public static func sharingDrills(_ all: [DoctorFacts]) -> [DoctorFacts] {
        let catalogs = all.compactMap(\.catalog)
        let last = catalogs.compactMap(\.lastDrill).max { $0.time < $1.time }
        let passing = catalogs.compactMap(\.lastPassingDrill).max()
        return all.map { f in
            var f = f
            f.catalog?.lastDrill = last
            f.catalog?.lastPassingDrill = passing
            return f
        }
    }
}
