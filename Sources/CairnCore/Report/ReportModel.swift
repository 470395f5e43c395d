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
        /// What the report can say about a day.
        public enum State: String, Codable, Sendable {
            /// Ended before the first backup: nothing could be recoverable, and the day is not counted.
            case beforeRepository = "before_repository"
            /// Not ended yet.
            case notOver = "not_over"
            /// Ended after the first backup: its coverage is measured.
            case measured
        }

        /// `2026-11-05`.
        public var date: String
        public var state: State
        /// Fraction of the day (0…1) inside the recoverable window, counted from the first backup on the day it was
        /// taken; nil unless the day is measured.
        public var coverage: Double?

        public init(date: String, state: State, coverage: Double? = nil) {
            self.date = date
            self.state = state
            self.coverage = coverage
        }
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
        guard p.count == 2, p[0].count == 4, p[1].count == 2, let y = Int(p[0]), let m = Int(p[1]), (1...12).contains(m)
        else { return nil }
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        guard let start = c.date(from: DateComponents(year: y, month: m, day: 1)),
            let end = c.date(byAdding: .month, value: 1, to: start)
        else { return nil }
        return (start, end)
    }

    /// The report of `month` as of `now`. `drills` may hold every drill (earlier ones count for drill recency);
    /// `requirements` are the drill policy's conditions for VERIFIED.
    public static func build(
        month: String, catalog: Catalog, jobs: [JobRecord], drills: [DrillRecord],
        verifies: [VerifyOperation.Result], location: String, now: Date,
        requirements: DrillPolicy.Verification = .init()
    ) throws -> ReportModel {
        guard let (start, end) = interval(month) else {
            throw CairnError(.usage, "--month must be YYYY-MM, not \"\(month)\"")
        }
        let inMonth = { (d: Date) in d >= start && d < end }
        // Backups: committed ones of the month, plus every recorded attempt (failures, and backups expired since).
        var backups: [ReportModel.Backup] = []
        var seen = Set<String>()
        for b in catalog.backups where inMonth(b.start.time) {
            backups.append(
                .init(
                    id: b.id, kind: b.kind.rawValue, time: b.start.time, outcome: "ok", storedBytes: b.storedSize,
                    error: nil, inRepository: true))
            seen.insert(b.id)
        }
        for j in jobs where j.job.hasPrefix("backup") && inMonth(j.started) {
            if let s = j.subject, seen.contains(s) { continue }
            backups.append(
                .init(
                    id: j.subject ?? "(none)", kind: j.job == "backup-logical" ? "logical" : "full", time: j.started,
                    outcome: j.outcome.rawValue, storedBytes: j.bytes, error: j.errorMessage, inRepository: false))
        }
        backups.sort { $0.time < $1.time }

        let origin = firstBackup(catalog, jobs: jobs)
        let days = classifyDays(
            start: start, end: end, origin: origin, spans: RecoveryPlanner.merge(RecoveryPlanner.window(catalog)),
            now: now)

        let gaps = VerifyOperation.missingSegments(catalog).flatMap {
            VerifyOperation.compact($0.1, segmentSize: catalog.wal.segmentSize)
        }
        let v = verifies.filter { inMonth($0.started) }.map {
            ReportModel.Verify(
                time: $0.started, ok: $0.ok, objectsChecked: $0.objectsChecked,
                problems: $0.problems.filter { $0.severity == .error }.count, full: $0.full)
        }
        let dr = drills.filter { inMonth($0.started) }.map {
            ReportModel.Drill(
                id: $0.id, time: $0.started, backup: $0.backupId, kind: $0.backupKind, target: $0.target,
                verdict: $0.verdict.rawValue, failedCheck: $0.failedCheck, rtoSeconds: $0.rto.totalSeconds,
                restoreSeconds: $0.rto.restoreSeconds, replaySeconds: $0.rto.replaySeconds,
                checksSeconds: $0.rto.checksSeconds)
        }
        let recency = drillRecency(
            drills, from: max(start, origin ?? start), to: min(end, now), interval: requirements.drillInterval)
        let (conclusion, verified) = conclude(
            month: month, backups: backups, days: days, gaps: gaps, verifies: v, drills: dr,
            ambiguous: catalog.lineage.ambiguous, requirements: requirements,
            origin: origin, recencyProblem: recency)
        return ReportModel(
            month: month, generated: now, repository: location, systemIdentifier: catalog.info.systemIdentifier,
            backups: backups, days: days, walGaps: gaps, verifies: v, drills: dr, conclusion: conclusion,
            verified: verified, cairnVersion: CairnVersion.current)
    }

    /// When the repository's first backup became consistent: the oldest committed backup's end, or an earlier
    /// successful backup recorded in the month's history (expired since). Nil when there was none.
    static func firstBackup(_ catalog: Catalog, jobs: [JobRecord]) -> Date? {
        let committed = catalog.backups.map(\.stop.time)
        let recorded = jobs.filter { $0.job.hasPrefix("backup") && $0.outcome == .ok }.map(\.finished)
        return (committed + recorded).min()
    }

    /// Every day of the month: before the first backup (not counted), not over yet, or measured — the share of the
    /// day inside the recoverable window (as the repository holds it now), from the first backup on.
    static func classifyDays(
        start: Date, end: Date, origin: Date?, spans: [RecoverableSpan], now: Date
    ) -> [ReportModel.Day] {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        var days: [ReportModel.Day] = []
        var d = start
        while d < end {
            let next = d.addingTimeInterval(86400)
            let date = f.string(from: d)
            if let origin, next > origin {
                if next > now {
                    days.append(.init(date: date, state: .notOver))
                } else {
                    let from = max(d, origin)
                    let covered = spans.reduce(0.0) { acc, s in
                        acc + max(0, min(next, s.toTime).timeIntervalSince(max(from, s.fromTime)))
                    }
                    days.append(
                        .init(date: date, state: .measured, coverage: min(1, covered / next.timeIntervalSince(from))))
                }
            } else {
                days.append(.init(date: date, state: next <= now ? .beforeRepository : .notOver))
            }
            d = next
        }
        return days
    }

    /// The drill policy's recency requirement over `from…to`: nil when a passing drill (of any month) finished at
    /// least every `interval`, else what went unproven for longest.
    static func drillRecency(_ drills: [DrillRecord], from: Date, to: Date, interval: Double) -> String? {
        guard to > from else { return nil }
        let passes = drills.filter { $0.verdict == .pass && $0.finished <= to }.map(\.finished).sorted()
        var since = passes.last { $0 <= from } ?? from
        var longest: (Date, Date) = (since, since)
        for t in passes where t > from {
            if t.timeIntervalSince(since) > longest.1.timeIntervalSince(longest.0) { longest = (since, t) }
            since = t
        }
        if to.timeIntervalSince(since) > longest.1.timeIntervalSince(longest.0) { longest = (since, to) }
        let gap = longest.1.timeIntervalSince(longest.0)
        guard gap > interval else { return nil }
        return
            "\(Units.formatDuration(gap.rounded())) went without a passing restore drill (\(Timestamp.format(longest.0)) to \(Timestamp.format(longest.1))); the drill policy asks for one every \(Units.formatDuration(interval))"
    }

    /// The sentence at the top of the report, and whether the month is verified: everything ran cleanly and the
    /// drill policy's requirements (day coverage, drill recency) are met for at least one completed day.
    static func conclude(
        month: String, backups: [ReportModel.Backup], days: [ReportModel.Day], gaps: [String],
        verifies: [ReportModel.Verify], drills: [ReportModel.Drill], ambiguous: [UInt32] = [],
        requirements: DrillPolicy.Verification = .init(), origin: Date? = nil,
        recencyProblem: String? = nil
    ) -> (String, Bool) {
        let ok = backups.filter { $0.outcome == "ok" }.count
        let failedBackups = backups.count - ok
        let passed = drills.filter { $0.verdict == "pass" }
        let failedDrills = drills.count - passed.count
        let measured = days.compactMap(\.coverage)
        let threshold = min(requirements.dayCoverage, 0.999)
        let fullDays = measured.filter { $0 >= threshold }.count
        let before = days.filter { $0.state == .beforeRepository }.count
        let rtos = passed.map(\.rtoSeconds).sorted()
        var problems: [String] = []
        if origin == nil {
            problems.append("the repository has no backup")
        } else if measured.isEmpty {
            problems.append(
                "no day since the first backup (\(Timestamp.format(origin!))) has ended yet, so nothing is proven for a whole day"
            )
        }
        if drills.isEmpty { problems.append("no restore drill ran") }
        if let recencyProblem { problems.append(recencyProblem) }
        if failedDrills > 0 { problems.append("\(failedDrills) of \(drills.count) drills failed") }
        if failedBackups > 0 { problems.append("\(failedBackups) of \(backups.count) backups failed") }
        if !gaps.isEmpty { problems.append("the WAL archive has \(gaps.count) gap(s)") }
        if verifies.contains(where: { !$0.ok }) { problems.append("repository verification found problems") }
        if !ambiguous.isEmpty {
            problems.append(
                "the repository cannot tell whether timeline(s) \(ambiguous.map(String.init).joined(separator: ", ")) are production's history or a copy's (`cairn timeline`)"
            )
        }
        let share =
            requirements.dayCoverage >= 0.999
            ? "fully" : "at least \(String(format: "%g", requirements.dayCoverage * 100))%"
        if fullDays < measured.count {
            problems.append("\(measured.count - fullDays) day(s) were not \(share) recoverable")
        }
        let rtoText =
            rtos.isEmpty
            ? ""
            : ", median RTO \(Units.formatDuration(rtos[rtos.count / 2])), worst \(Units.formatDuration(rtos.last!))"
        let summary =
            "\(ok) of \(backups.count) backups succeeded, \(passed.count) of \(drills.count) restore drills passed\(rtoText), "
            + "\(fullDays) of \(measured.count) completed days were \(share) recoverable"
            + (before > 0 ? " (\(before) day(s) before the first backup not counted)" : "")
        if problems.isEmpty {
            return ("VERIFIED \(month): \(summary); no WAL gaps and no verification problems.", true)
        }
        return ("NOT VERIFIED \(month): \(problems.joined(separator: "; ")). \(summary).", false)
    }
}
