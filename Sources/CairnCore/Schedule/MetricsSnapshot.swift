import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// The figures Cairn exports to Prometheus, gathered from the repository (and the data directory when it is local):
/// the same for the daemon's `/metrics` and for `cairn metrics --textfile`.
public struct MetricsSnapshot: Sendable, Equatable {
    public struct Job: Sendable, Equatable {
        public var lastStart: Date?
        public var lastSuccess: Date?
        public var lastFailure: Date?
        public var lastDuration: Double?
    }

    /// By job name (`backup-full`, `expire`, …).
    public var jobs: [String: Job] = [:]
    /// By backup kind.
    public var backups: [String: Int] = [:]
    public var backupBytes: Int64 = 0
    public var walBytes: Int64 = 0
    public var walSegments = 0
    /// When the newest archived segment was stored.
    public var newestWAL: Date?
    /// `.ready` files in `pg_wal/archive_status` (segments PostgreSQL has not archived yet), when readable.
    public var readyWALFiles: Int?
    public var windowStart: Date?
    public var windowEnd: Date?
    public var lastDrill: Date?
    public var lastDrillPassed: Bool?
    public var lastDrillRTO: Double?
    public var lastPassingDrill: Date?
    /// With several repositories: each one's state against the primary.
    public var repositories: [RepositoryState] = []

    /// One of several repositories: readable, and what it lacks of the primary's (``RepositoryLag``).
    public struct RepositoryState: Sendable, Equatable {
        public var name: String
        public var up: Bool
        public var missingBackups: Int
        public var missingWAL: Int
    }

    public init() {}

    /// Gathers the snapshot from the primary (see ``collect(repo:dataDirectory:now:)``) and, with several
    /// repositories, whether each one is readable and what it lacks of the primary's.
    public static func collect(repos: RepositorySet, dataDirectory: String?, now: Date) throws -> MetricsSnapshot {
        var s = try collect(repo: repos.primary.repo, dataDirectory: dataDirectory, now: now)
        guard repos.isSeveral else { return s }
        let primary = try Catalog.load(from: repos.primary.repo)
        s.repositories = repos.members.map { m in
            guard let c = try? Catalog.load(from: m.repo) else {
                return RepositoryState(name: m.name, up: false, missingBackups: 0, missingWAL: 0)
            }
            let lag = RepositoryLag.of(c, behind: primary)
            return RepositoryState(
                name: m.name, up: true, missingBackups: lag.missingBackups.count, missingWAL: lag.missingWAL.count)
        }
        return s
    }

    /// Gathers the snapshot. `dataDirectory` is read for `.ready` files when given and readable.
    public static func collect(repo: any Repository, dataDirectory: String?, now: Date) throws -> MetricsSnapshot {
        var s = MetricsSnapshot()
        let catalog = try Catalog.load(from: repo)
        for b in catalog.backups { s.backups[b.kind.rawValue, default: 0] += 1 }
        s.backupBytes = catalog.backups.reduce(0) { $0 + $1.storedSize }
        for (_, segs) in catalog.wal.segments {
            for (_, e) in segs {
                s.walBytes += e.storedSize
                s.walSegments += 1
                if let t = e.stored, t > (s.newestWAL ?? .distantPast) { s.newestWAL = t }
            }
        }
        let spans = RecoveryPlanner.merge(RecoveryPlanner.window(catalog))
        s.windowStart = spans.first?.fromTime
        s.windowEnd = spans.last?.toTime
        // Job history of this month and the previous one.
        var records: [JobRecord] = []
        for month in [JobRecord.month(now.addingTimeInterval(-32 * 86400)), JobRecord.month(now)] {
            records += try JobRecord.load(month: month, from: repo)
        }
        for r in records.sorted(by: { $0.started < $1.started }) {
            var j = s.jobs[r.job] ?? Job()
            j.lastStart = r.started
            j.lastDuration = r.finished.timeIntervalSince(r.started)
            if r.outcome == .ok { j.lastSuccess = r.finished } else { j.lastFailure = r.finished }
            s.jobs[r.job] = j
        }
        let drills = try DrillRecord.loadAll(from: repo)
        if let d = drills.last {
            s.lastDrill = d.finished
            s.lastDrillPassed = d.verdict == .pass
            s.lastDrillRTO = d.rto.totalSeconds
        }
        s.lastPassingDrill = drills.last { $0.verdict == .pass }?.finished
        if let dir = dataDirectory,
            let names = try? FileManager.default.contentsOfDirectory(atPath: dir + "/pg_wal/archive_status")
        {
            s.readyWALFiles = names.filter { $0.hasSuffix(".ready") }.count
        }
        return s
    }
}
