import CairnBase
import CairnStorage
import Foundation

/// One run of a job (backup, expire, verify, drill, report), kept under `history/<yyyy-MM>/` for the monthly
/// report, metrics and `doctor`. Written best-effort at the end of every run, success or failure.
public struct JobRecord: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable { case ok, failed }

    /// `backup-full`, `backup-incr`, `backup-diff`, `backup-logical`, `expire`, `verify`, `drill`, `report`.
    public var job: String
    public var started: Date
    public var finished: Date
    public var outcome: Outcome
    /// The backup or drill the run produced or used.
    public var subject: String?
    /// Bytes the run stored (backups) or read (verify).
    public var bytes: Int64?
    public var errorCode: String?
    public var errorMessage: String?
    public var host: String

    enum CodingKeys: String, CodingKey {
        case job, started, finished, outcome, subject, bytes, host
        case errorCode = "error_code"
        case errorMessage = "error_message"
    }

    public init(
        job: String, started: Date, finished: Date, outcome: Outcome, subject: String? = nil, bytes: Int64? = nil,
        error: (any Error)? = nil
    ) {
        self.job = job
        self.started = started
        self.finished = finished
        self.outcome = outcome
        self.subject = subject
        self.bytes = bytes
        if let error {
            let (code, message, _) = describeError(error)
            errorCode = code.rawValue
            errorMessage = message
        }
        host = ProcessInfo.processInfo.hostName
    }

    public static func month(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM"
        return f.string(from: d)
    }

    /// `history/2026-11/20261125T153012Z-backup-full-1a2b.json`.
    public var key: String {
        Layout.jobRecordsPrefix(month: JobRecord.month(started))
            + "\(Layout.backupId(at: started, type: "Z"))-\(job)-\(String(UInt16.random(in: 0...UInt16.max), radix: 16)).json"
    }

    /// Records a finished job for the report, metrics and doctor (best-effort: recording never fails a job).
    public static func record(
        _ repo: any Repository, job: String, started: Date, subject: String? = nil, bytes: Int64? = nil,
        error: (any Error)? = nil
    ) async {
        let r = JobRecord(
            job: job, started: started, finished: Date(), outcome: error == nil ? .ok : .failed,
            subject: subject, bytes: bytes, error: error)
        await Blocking.runIgnoringErrors { r.save(to: repo) }
    }

    /// Stores the record; failures to record never fail the job itself.
    public func save(to repo: any Repository) {
        _ = try? repo.put(key, try SealedDocument.seal(self), options: .createOnly)
    }

    /// Every record of a month (`yyyy-MM`), oldest first; unreadable records are skipped.
    public static func load(month: String, from repo: any Repository) throws -> [JobRecord] {
        try repo.list(prefix: Layout.jobRecordsPrefix(month: month)).compactMap { o in
            guard let b = try? repo.getBytes(o.key) else { return nil }
            return try? SealedDocument.open(JobRecord.self, from: b, what: o.key)
        }.sorted { $0.started < $1.started }
    }
}
