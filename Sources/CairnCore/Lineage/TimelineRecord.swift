import CairnBase
import CairnStorage
import Foundation

/// What the repository knows about one timeline: whether it is the production cluster's history or a copy's.
///
/// Stored as `timelines/<TLI>.json` (a sealed document). Automatic decisions (`init`, `backup`, `wal-push` of a
/// history file with proof of who pushed it) are create-only, so the first decision stands; an operator's
/// `cairn timeline adopt|mark-copy` replaces it.
public struct TimelineRecord: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable {
        /// The production cluster's history: restores and retention follow it.
        case production
        /// A copy's history (a side restore that was promoted): never taken for the present.
        case copy
    }

    public var timeline: UInt32
    public var verdict: Verdict
    /// What decided it: `init`, `backup`, `wal-push`, `timeline adopt`, `timeline mark-copy`.
    public var decidedBy: String
    /// Why, in words (the evidence).
    public var reason: String
    public var host: String
    public var at: Date

    public init(
        timeline: UInt32, verdict: Verdict, decidedBy: String, reason: String, at: Date,
        host: String = ProcessInfo.processInfo.hostName
    ) {
        self.timeline = timeline
        self.verdict = verdict
        self.decidedBy = decidedBy
        self.reason = reason
        self.host = host
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case timeline, verdict, reason, host, at
        case decidedBy = "decided_by"
    }

    /// Records `record`. Automatic decisions (`replace: false`) never change an earlier one: returns the record that
    /// stands (the earlier one when there was one).
    @discardableResult
    public static func write(_ record: TimelineRecord, to repo: any Repository, replace: Bool) throws -> TimelineRecord
    {
        let key = Layout.timelineKey(record.timeline)
        let bytes = try SealedDocument.seal(record)
        do {
            try repo.put(key, bytes, options: replace ? .overwrite : .createOnly)
            return record
        } catch let e as CairnError where e.code == .repoObjectExists {
            return try read(record.timeline, from: repo) ?? record
        }
    }

    /// The record of `timeline`, or nil when none was written.
    public static func read(_ timeline: UInt32, from repo: any Repository) throws -> TimelineRecord? {
        guard let b = try repo.getBytesIfExists(Layout.timelineKey(timeline)) else { return nil }
        return try SealedDocument.open(TimelineRecord.self, from: b, what: Layout.timelineKey(timeline))
    }
}
