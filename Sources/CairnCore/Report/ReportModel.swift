import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// The monthly restore-verification report: what was backed up, what was recoverable, what was proven.
public struct ReportModel: Codable, Sendable, Equatable {
    public struct Backup: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var time: Date
        public var outcome: String
        public var storedBytes: Int64?
        public var error: String?
        /// Still in the repository (not expired since).
        public var inRepository: Bool

        enum CodingKeys: String, CodingKey {
            case id, kind, time, outcome, error
            case storedBytes = "stored_bytes"
            case inRepository = "in_repository"
        }
    }

    public struct Day: Codable, Sendable, Equatable {
        /// `2026-11-05`.
        public var date: String
        /// Fraction of the day (0…1) inside the recoverable window; nil for days that have not ended or that ended
        /// before the repository was created.
        public var coverage: Double?
    }

    public struct Drill: Codable, Sendable, Equatable {
        public var id: String
        public var time: Date
        public var backup: String
        public var kind: String
        public var target: String
        public var verdict: String
        public var failedCheck: String?
        public var rtoSeconds: Double
        public var restoreSeconds: Double
        public var replaySeconds: Double
        public var checksSeconds: Double

        enum CodingKeys: String, CodingKey {
            case id, time, backup, kind, target, verdict
            case failedCheck = "failed_check"
            case rtoSeconds = "rto_seconds"
            case restoreSeconds = "restore_seconds"
            case replaySeconds = "replay_seconds"
            case checksSeconds = "checks_seconds"
        }
    }

    public struct Verify: Codable, Sendable, Equatable {
        public var time: Date
        public var ok: Bool
        public var objectsChecked: Int
        public var problems: Int
        public var full: Bool

        enum CodingKeys: String, CodingKey {
            case time, ok, problems, full
            case objectsChecked = "objects_checked"
        }
    }

    public var month: String
    public var generated: Date
    public var repository: String
    public var systemIdentifier: String
    public var backups: [Backup]
    public var days: [Day]
    public var walGaps: [String]
    public var verifies: [Verify]
    public var drills: [Drill]
    /// One sentence an auditor can sign.
    public var conclusion: String
    /// True when nothing in the month needs attention.
    public var verified: Bool
    public var cairnVersion: String

    enum CodingKeys: String, CodingKey {
        case month, generated, repository, backups, days, verifies, drills, conclusion, verified
        case systemIdentifier = "system_identifier"
        case walGaps = "wal_gaps"
        case cairnVersion = "cairn_version"
    }
}

/// Builds the report from the repository's records (pure: everything comes in as values).
public enum ReportBuilder {
    /// The UTC interval of `month` (`yyyy-MM`); nil when malformed.
    public static func interval(_ month: String) -> (start: Date, end: Date)? {
        let p = month.split(separator: "-")
        guard p.count == 2, p[0].count == 4, p[1].count == 2, let y = Int(p[0]), let m = Int(p[1]), (1...12).contains(m) else { return nil }
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        guard let start = c.date(from: DateComponents(year: y, month: m, day: 1)),
              let end = c.date(byAdding: .month, value: 1, to: start) else { return nil }
        return (start, end)
    }

    public static func build(month: String, catalog: Catalog, jobs: [JobRecord], drills: [DrillRecord],
                             verifies: [VerifyOperation.Result], location: String, now: Date) throws -> ReportModel {
        guard let (start, end) = interval(month) else {
            throw CoreError(.usage, "--month must be YYYY-MM, not \"\(month)\"")
        }
        let inMonth = { (d: Date) in d >= start && d < end }
        // Backups: committed ones of the month, plus every recorded attempt (failures, and backups expired since).
        var backups: [ReportModel.Backup] = []
        var seen = Set<String>()
        for b in catalog.backups where inMonth(b.start.time) {
            backups.append(.init(id: b.id, kind: b.kind.rawValue, time: b.start.time, outcome: "ok", storedBytes: b.storedSize,
                                 error: nil, inRepository: true))
            seen.insert(b.id)
        }
        for j in jobs where j.job.hasPrefix("backup") && inMonth(j.started) {
            if let s = j.subject, seen.contains(s) { continue }
            backups.append(.init(id: j.subject ?? "(none)", kind: j.job == "backup-logical" ? "logical" : "full", time: j.started,
                                 outcome: j.outcome.rawValue, storedBytes: j.bytes, error: j.errorMessage, inRepository: false))
        }
        backups.sort { $0.time < $1.time }

        // Coverage of each day by the recoverable window (as the repository holds it now).
        let spans = RecoveryPlanner.merge(RecoveryPlanner.window(catalog))
        var days: [ReportModel.Day] = []
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        var d = start
        while d < end {
            let next = d.addingTimeInterval(86400)
            var coverage: Double?
            // Days before the repository existed are not counted; days that have not ended are not measured yet.
            if next <= now && next > catalog.info.created {
                let covered = spans.reduce(0.0) { acc, s in
                    acc + max(0, min(next, s.toTime).timeIntervalSince(max(d, s.fromTime)))
                }
                coverage = min(1, covered / 86400)
            }
            days.append(.init(date: f.string(from: d), coverage: coverage))
            d = next
        }

        let gaps = VerifyOperation.missingSegments(catalog).flatMap { VerifyOperation.compact($0.1, segmentSize: catalog.wal.segmentSize) }
        let v = verifies.filter { inMonth($0.started) }.map {
            ReportModel.Verify(time: $0.started, ok: $0.ok, objectsChecked: $0.objectsChecked,
                               problems: $0.problems.filter { $0.severity == .error }.count, full: $0.full)
        }
        let dr = drills.filter { inMonth($0.started) }.map {
            ReportModel.Drill(id: $0.id, time: $0.started, backup: $0.backupId, kind: $0.backupKind, target: $0.target,
                              verdict: $0.verdict.rawValue, failedCheck: $0.failedCheck, rtoSeconds: $0.rto.totalSeconds,
                              restoreSeconds: $0.rto.restoreSeconds, replaySeconds: $0.rto.replaySeconds, checksSeconds: $0.rto.checksSeconds)
        }
        let (conclusion, verified) = conclude(month: month, backups: backups, days: days, gaps: gaps, verifies: v, drills: dr,
                                              ambiguous: catalog.lineage.ambiguous)
        return ReportModel(month: month, generated: now, repository: location, systemIdentifier: catalog.info.systemIdentifier,
                           backups: backups, days: days, walGaps: gaps, verifies: v, drills: dr, conclusion: conclusion,
                           verified: verified, cairnVersion: CairnVersion.current)
    }

    /// The sentence at the top of the report, and whether the month is clean.
    static func conclude(month: String, backups: [ReportModel.Backup], days: [ReportModel.Day], gaps: [String],
                         verifies: [ReportModel.Verify], drills: [ReportModel.Drill], ambiguous: [UInt32] = []) -> (String, Bool) {
        let ok = backups.filter { $0.outcome == "ok" }.count
        let failedBackups = backups.count - ok
        let passed = drills.filter { $0.verdict == "pass" }
        let failedDrills = drills.count - passed.count
        let measured = days.compactMap(\.coverage)
        let fullDays = measured.filter { $0 >= 0.999 }.count
        let rtos = passed.map(\.rtoSeconds).sorted()
        var problems: [String] = []
        if drills.isEmpty { problems.append("no restore drill ran") }
        if failedDrills > 0 { problems.append("\(failedDrills) of \(drills.count) drills failed") }
        if failedBackups > 0 { problems.append("\(failedBackups) of \(backups.count) backups failed") }
        if !gaps.isEmpty { problems.append("the WAL archive has \(gaps.count) gap(s)") }
        if verifies.contains(where: { !$0.ok }) { problems.append("repository verification found problems") }
        if !ambiguous.isEmpty {
            problems.append("the repository cannot tell whether timeline(s) \(ambiguous.map(String.init).joined(separator: ", ")) are production's history or a copy's (`cairn timeline`)")
        }
        if fullDays < measured.count { problems.append("\(measured.count - fullDays) day(s) were not fully recoverable") }
        let rtoText = rtos.isEmpty ? "" : ", median RTO \(Units.formatDuration(rtos[rtos.count / 2])), worst \(Units.formatDuration(rtos.last!))"
        let summary = "\(ok) of \(backups.count) backups succeeded, \(passed.count) of \(drills.count) restore drills passed\(rtoText), "
            + "\(fullDays) of \(measured.count) completed days were fully recoverable"
        if problems.isEmpty {
            return ("VERIFIED \(month): \(summary); no WAL gaps and no verification problems.", true)
        }
        return ("NOT VERIFIED \(month): \(problems.joined(separator: "; ")). \(summary).", false)
    }
}
