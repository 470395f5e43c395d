import CairnBase
import CairnPostgres
import Foundation

/// Which timeline history is the production cluster's, from what the repository holds.
///
/// A promoted copy (a side restore started with archiving on) archives a new timeline's history into the same
/// repository; "the newest timeline" is then not the present. So the present is decided by evidence:
/// - a ``TimelineRecord`` (`timelines/<TLI>.json`) says production or copy: written by `init` and `backup` (the
///   cluster `cluster.connection` reaches is production), by `wal-push` of a history file when it proves which
///   server pushed it, and by the operator (`cairn timeline adopt|mark-copy`);
/// - a committed physical backup's timeline is production's (backups are taken of the configured cluster), which
///   also covers repositories written before timeline records existed;
/// - every ancestor of a production timeline is production.
///
/// Production's newest timeline is the tip. A timeline numbered above the tip that no evidence places is
/// *undecided*: production may have moved there (a failover, an in-place point-in-time restore) or it may be a
/// copy, and a restore that would have to choose refuses instead of guessing.
public struct Lineage: Sendable {
    public enum Status: String, Sendable, Codable { case production, copy, undecided }

    /// Production's newest timeline.
    public var production: UInt32
    /// The status of every timeline the repository knows (WAL, history, backup or record).
    public var statuses: [UInt32: Status]
    /// The records, by timeline.
    public var records: [UInt32: TimelineRecord]
    /// Timeline histories (parent switches), as in ``WALArchive/histories``.
    public var histories: [UInt32: [TimelineSwitch]]
    /// When each timeline's history file reached the repository: about when that timeline began.
    public var started: [UInt32: Date]
    /// The archive the decisions were made from.
    public var wal: WALArchive

    /// Undecided timelines above the tip: the reason a restore cannot tell which history is the present.
    public var ambiguous: [UInt32] {
        statuses.filter { $0.value == .undecided && $0.key > production }.map(\.key).sorted()
    }

    public init(wal: WALArchive, records: [UInt32: TimelineRecord], backupTimelines: [UInt32]) {
        self.records = records
        self.wal = wal
        histories = wal.histories
        started = wal.historyStored
        let known = Set(wal.timelines).union(records.keys).union(backupTimelines)
        var evidence = Set(records.values.filter { $0.verdict == .production }.map(\.timeline))
        evidence.formUnion(backupTimelines.filter { records[$0]?.verdict != .copy })
        production = evidence.max() ?? known.min() ?? 1
        // Ancestors of production timelines are production's history too.
        var prod = Set<UInt32>()
        for t in evidence { prod.formUnion(TimelinePath(target: t, histories: wal.histories).timelines) }
        var statuses: [UInt32: Status] = [:]
        for t in known.union(prod) {
            statuses[t] = prod.contains(t) ? .production : records[t]?.verdict == .copy ? .copy : .undecided
        }
        if evidence.isEmpty { statuses[production] = .production }
        self.statuses = statuses
    }

    /// The lineage of a catalog.
    public init(_ catalog: Catalog) {
        self.init(
            wal: catalog.wal, records: catalog.timelineRecords,
            backupTimelines: catalog.backups.filter { $0.kind == .full }.map(\.stop.timeline))
    }

    /// The path to production's newest timeline.
    public var productionPath: TimelinePath { TimelinePath(target: production, histories: histories) }

    /// The first fork on `path` where the parent went on writing WAL past the fork point (an in-place
    /// point-in-time restore, or a copy) and the child began after `time`. At `time` the parent's history was the
    /// live one: along `path`, recovery to `time` would stop at the fork point instead. (A failover's old
    /// timeline ends at the fork, so a time before the new timeline began is the fork's state on both.)
    public func divergence(after time: Date, on path: TimelinePath) -> (timeline: UInt32, parent: UInt32, began: Date)?
    {
        for t in path.timelines.dropFirst() {
            guard let began = started[t], began > time, let fork = histories[t]?.last else { continue }
            let forkSegment = fork.switchPoint.segment(size: wal.segmentSize)
            if (wal.segments[fork.parent] ?? [:]).keys.contains(where: { $0 >= forkSegment }) {
                return (t, fork.parent, began)
            }
        }
        return nil
    }

    /// The timeline to recover along to reach `time` as production had it: production's, or the parent a
    /// later fork diverged from (see ``divergence(after:on:)``).
    public func productionTimeline(at time: Date) -> UInt32 {
        var path = productionPath
        while let d = divergence(after: time, on: path) { path = TimelinePath(target: d.parent, histories: histories) }
        return path.target
    }

    /// One line per known timeline, oldest first: `2  copy  forked from 1 at 0/5000060  (wal-push: …)`.
    public func describe(_ t: UInt32) -> String {
        var parts = ["timeline \(t)"]
        if let s = histories[t]?.last { parts.append("forked from \(s.parent) at \(s.switchPoint)") }
        if let b = started[t] { parts.append("began \(Timestamp.format(b))") }
        return parts.joined(separator: ", ")
    }

    /// The refusal for a restore or plan that would have to choose between production and undecided timelines.
    public func ambiguityError() -> CairnError {
        let names = ambiguous.map { describe($0) }.joined(separator: "; ")
        return CairnError(
            .repoAmbiguousHistory,
            "cannot tell which history is production: the repository's newest production timeline is \(production), but it also holds \(names), which nothing places in production's history or marks as a copy",
            hint:
                "restore along one explicitly with --target-timeline \(([production] + ambiguous).map(String.init).joined(separator: "|")), or record what it is: `cairn timeline adopt N` (production moved there: a failover or an in-place restore) or `cairn timeline mark-copy N` (a side copy); see runbooks/side-restore.md"
        )
    }
}
