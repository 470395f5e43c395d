import CairnBase
import CairnStorage
import Foundation

/// `drills/<id>.json`: the evidence of one drill. Sealed like manifests.
public struct DrillRecord: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable { case pass, fail }

    /// One check and its outcome.
    public struct Check: Codable, Sendable, Equatable {
        public var name: String
        public var ok: Bool
        public var detail: String
        public var seconds: Double
    }

    /// Recovery time, by phase.
    public struct RTO: Codable, Sendable, Equatable {
        /// Fetching and laying out the backup (physical), or creating the scratch cluster and restoring (logical).
        public var restoreSeconds: Double
        /// From starting PostgreSQL to the target reached and the server promoted.
        public var replaySeconds: Double
        public var checksSeconds: Double
        public var totalSeconds: Double

        enum CodingKeys: String, CodingKey {
            case restoreSeconds = "restore_seconds"
            case replaySeconds = "replay_seconds"
            case checksSeconds = "checks_seconds"
            case totalSeconds = "total_seconds"
        }
    }

    public var id: String
    public var backupId: String
    public var backupKind: String
    /// What recovery aimed at, e.g. "LSN 0/5A3F120" or "immediate (end of the backup)".
    public var target: String
    /// The last transaction replayed, when PostgreSQL logged it.
    public var reachedTime: Date?
    public var verdict: Verdict
    /// The first check that failed.
    public var failedCheck: String?
    public var checks: [Check]
    public var rto: RTO
    public var started: Date
    public var finished: Date
    public var host: String
    public var bytesRestored: Int64
    /// How the files were laid out: `full` (into an empty folder) or `delta` (onto the folder a previous drill
    /// kept, `keep_scratch`); nil in records written before delta restores existed, and for logical backups.
    public var restoreMode: String?
    /// A delta restore's bytes written because they differed.
    public var bytesRewritten: Int64?

    enum CodingKeys: String, CodingKey {
        case id, target, verdict, checks, rto, started, finished, host
        case backupId = "backup"
        case backupKind = "backup_kind"
        case reachedTime = "reached_time"
        case failedCheck = "failed_check"
        case bytesRestored = "bytes_restored"
        case restoreMode = "restore_mode"
        case bytesRewritten = "bytes_rewritten"
    }

    public static func key(_ id: String) -> String { Layout.drillKey(id) }

    /// Every drill record, oldest first (unreadable ones skipped).
    public static func loadAll(from repo: any Repository) throws -> [DrillRecord] {
        try repo.list(prefix: Layout.drillsPrefix).compactMap { o in
            guard o.key.hasSuffix(".json"), let b = try? repo.getBytes(o.key) else { return nil }
            return try? SealedDocument.open(DrillRecord.self, from: b, what: o.key)
        }.sorted { $0.started < $1.started }
    }
}
