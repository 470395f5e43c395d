import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// One decision of an expire plan, with its reason.
public struct ExpireDecision: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable { case keep, delete }
    /// What is decided: a backup id, a WAL range (`000000010000000000000003…000000010000000000000009`), or a key.
    public var subject: String
    /// `backup`, `wal`, `history`, `orphan`.
    public var kind: String
    public var action: Action
    public var reason: String
    /// Object keys the decision covers (for deletes: what goes).
    public var keys: [String]
}

/// The plan `cairn expire` executes: every backup and WAL range kept or deleted, with the reason.
public struct ExpirePlan: Sendable, Codable {
    public var now: Date
    public var windowStart: Date
    /// The backup that reaches the window's start (the oldest one the window needs).
    public var anchor: String?
    public var decisions: [ExpireDecision]
    /// Problems the policy cannot fix (the window reaches back before any backup, a gap).
    public var warnings: [String]

    /// Backups to delete, oldest first: each is uncommitted (manifest deleted) before its data.
    public var expiredBackups: [String] {
        decisions.filter { $0.kind == "backup" && $0.action == .delete }.map(\.subject)
    }
    /// Every key to delete.
    public var deletions: [String] { decisions.filter { $0.action == .delete }.flatMap(\.keys) }

    enum CodingKeys: String, CodingKey {
        case now, anchor, decisions, warnings
        case windowStart = "window_start"
    }
}

/// Pure retention: `(catalog, policy, now) → plan`.
///
/// Guarantee: every instant of the recovery window that the repository could restore before the plan, it can
/// restore after. The planner keeps the newest full backup (on the path to the present timeline) whose
/// consistency point is at or before the window's start — the anchor — and every later backup, all WAL from the
/// anchor's start onward on production's history (``Lineage``) and on every other timeline's, the WAL each kept
/// backup needs to become consistent, pinned backups, the newest `minFullBackups` full backups, logical backups
/// younger than their retention, and every timeline history file. It never expires the last full backup, and
/// nothing a running job holds a live ``Lease`` on: a restore's backup and the WAL it replays, a running
/// backup's uncommitted objects, everything while a drill runs or a restore has not chosen its backup yet.
public enum ExpirePlanner {
    public static func plan(_ catalog: Catalog, policy: RetentionPolicy, now: Date) -> ExpirePlan {
        let p = Planning(catalog: catalog, policy: policy, now: now)
        let (anchor, warnings) = p.anchor()
        let kept = p.backupsToKeep(anchor: anchor)
        let needed = p.neededWAL(anchor: anchor, keptBackups: kept)
        let decisions =
            p.backupDecisions(anchor: anchor, keep: kept)
            + p.segmentDecisions(anchor: anchor, needed: needed)
            + p.partialAndHistoryDecisions(anchor: anchor, needed: needed)
            + p.uncommittedDecisions()
            + p.recordDecisions()
        return ExpirePlan(
            now: now, windowStart: p.windowStart, anchor: anchor?.id, decisions: decisions, warnings: warnings)
    }

    /// What every step of one plan reads: the catalog, the policy, the time, and what follows from them.
    struct Planning {
        let catalog: Catalog
        let policy: RetentionPolicy
        let now: Date
        let windowStart: Date
        let wal: WALArchive
        let seg: Int64
        let lineage: Lineage
        /// Production's history: the path to the present timeline.
        let path: TimelinePath
        /// The leases of running jobs.
        let live: [Lease]
        /// A live lease that holds everything (a drill, a restore that has not chosen its backup yet).
        let holdAll: Lease?
        /// Full backups, oldest consistency point first.
        let fulls: [BackupManifest]

        init(catalog: Catalog, policy: RetentionPolicy, now: Date) {
            self.catalog = catalog
            self.policy = policy
            self.now = now
            windowStart = now.addingTimeInterval(-policy.recoveryWindow)
            wal = catalog.wal
            seg = wal.segmentSize
            lineage = catalog.lineage
            path = lineage.productionPath
            live = catalog.leases.filter { $0.expires > now }
            holdAll = live.first { $0.claimsEverything }
            // Every restorable physical backup: a full, or an incremental or differential whose chain is complete.
            fulls = catalog.restorableBackups.sorted { $0.stop.time < $1.stop.time }
        }

        /// The anchor: the newest consistent full backup on production's path that is consistent by the window's
        /// start, with warnings when none is or when its WAL cannot reach the window's start.
        func anchor() -> (BackupManifest?, [String]) {
            let reaches = Dictionary(
                uniqueKeysWithValues: fulls.map { ($0.id, RecoveryPlanner.reach($0, path: path, wal: wal)) })
            var warnings: [String] = []
            let onPath = fulls.filter { reaches[$0.id]?.consistent == true }
            var anchor = onPath.last { $0.stop.time <= windowStart }
            if anchor == nil, let oldest = onPath.first {
                anchor = oldest
                warnings.append(
                    "the recovery window starts at \(Timestamp.format(windowStart)), before the oldest restorable backup \(oldest.id) (consistent at \(Timestamp.format(oldest.stop.time))): nothing older exists to keep"
                )
            }
            if let a = anchor, let r = reaches[a.id], let end = r.endTime, end < windowStart {
                warnings.append(
                    "backup \(a.id) cannot reach the window start: the WAL archive ends or has a gap at \(r.firstMissing ?? r.lastSegment?.name ?? "?")"
                )
            }
            return (anchor, warnings)
        }

        /// The backups kept, each with every reason it is kept.
        func backupsToKeep(anchor: BackupManifest?) -> [String: [String]] {
            var keepReasons: [String: [String]] = [:]
            func keep(_ id: String, _ why: String) { keepReasons[id, default: []].append(why) }
            if let a = anchor {
                keep(a.id, "anchor: the newest backup consistent by the window start \(Timestamp.format(windowStart))")
            }
            for b in fulls where anchor.map({ b.stop.time > $0.stop.time }) ?? true {
                keep(b.id, "inside the recovery window (consistent at \(Timestamp.format(b.stop.time)))")
            }
            for b in fulls.filter({ $0.kind == .full }).suffix(policy.minFullBackups) {
                keep(b.id, "one of the \(policy.minFullBackups) newest full backups (min_full_backups)")
            }
            for (id, pin) in catalog.pins where catalog.backup(id) != nil {
                keep(id, "pinned: \(pin.reason)")
            }
            for l in live {
                guard let id = l.backup, catalog.backup(id) != nil else { continue }
                let what = l.kind == .backup ? "a running incremental backup builds on it" : "being restored"
                keep(id, "\(what) (lease \(l.id) on \(l.host) until \(Timestamp.format(l.expires)))")
            }
            if let l = holdAll {
                for b in catalog.backups {
                    keep(
                        b.id,
                        "a \(l.kind.rawValue) is running (lease \(l.id) on \(l.host)): nothing is deleted until it has chosen what it needs"
                    )
                }
            }
            let logicalCutoff = now.addingTimeInterval(-policy.logicalRetention)
            for b in catalog.backups where b.kind == .logical && b.stop.time >= logicalCutoff {
                keep(
                    b.id,
                    "logical backup younger than logical_backups retention (\(Units.formatDuration(policy.logicalRetention)))"
                )
            }
            // A kept incremental or differential backup keeps every backup it builds on.
            for id in Array(keepReasons.keys) {
                for b in ((try? catalog.chain(id)) ?? []).dropLast() { keep(b.id, "backup \(id) builds on it") }
            }
            return keepReasons
        }

        /// One decision per backup; a deleted backup's manifest goes first.
        func backupDecisions(anchor: BackupManifest?, keep keepReasons: [String: [String]]) -> [ExpireDecision] {
            catalog.backups.map { b in
                let keys = (catalog.backupObjects[b.id] ?? []).map(\.key)
                if let reasons = keepReasons[b.id] {
                    return .init(
                        subject: b.id, kind: "backup", action: .keep, reason: reasons.joined(separator: "; "),
                        keys: keys)
                }
                let why =
                    b.kind == .logical
                    ? "logical backup older than \(Units.formatDuration(policy.logicalRetention))"
                    : "older than the anchor \(anchor?.id ?? "-"); not needed for the window"
                // The manifest goes first, so an interrupted expire leaves only uncommitted garbage.
                let ordered = [Layout.manifestKey(b.id)] + keys.filter { $0 != Layout.manifestKey(b.id) }.sorted()
                return .init(subject: b.id, kind: "backup", action: .delete, reason: why, keys: ordered)
            }
        }

        /// Which segments are needed, and why (the first reason found), by timeline and segment number.
        func neededWAL(
            anchor: BackupManifest?, keptBackups keepReasons: [String: [String]]
        ) -> [UInt32: [UInt64: String]] {
            var needed: [UInt32: [UInt64: String]] = [:]
            func need(_ tli: UInt32, _ n: UInt64, _ why: String) {
                if needed[tli]?[n] == nil { needed[tli, default: [:]][n] = why }
            }
            if let a = anchor {
                needAlong(
                    path, from: a.startSegment.number, wal: wal, need, "on production's history from the anchor \(a.id)"
                )
                // Every other history too (a copy's, or one not yet known to be production's), from the same point:
                // it ages out with the window, never because another history was taken for the present.
                for t in wal.timelines where !path.timelines.contains(t) {
                    needAlong(
                        TimelinePath(target: t, histories: wal.histories), from: a.startSegment.number, wal: wal, need,
                        "on timeline \(t)'s history (\(lineage.statuses[t]?.rawValue ?? "undecided")) after the anchor \(a.id)'s start"
                    )
                }
            }
            for l in live {
                guard let tli = l.timeline,
                    let first = l.firstSegment.flatMap({ WALSegment(name: $0, segmentSize: seg) })
                else { continue }
                needAlong(
                    TimelinePath(target: tli, histories: wal.histories), from: first.number, wal: wal, need,
                    "replayed by a restore (lease \(l.id) on \(l.host) until \(Timestamp.format(l.expires)))")
            }
            if let l = holdAll {
                for t in wal.timelines {
                    for n in (wal.segments[t] ?? [:]).keys {
                        need(t, n, "a \(l.kind.rawValue) is running (lease \(l.id) on \(l.host))")
                    }
                }
            }
            for b in catalog.backups where keepReasons[b.id] != nil && b.kind.isPhysical {
                for n in b.startSegment.number...max(b.startSegment.number, b.stopSegment.number) {
                    need(b.start.timeline, n, "needed by backup \(b.id) to become consistent")
                }
            }
            return needed
        }

        /// Consecutive segments of one timeline with the same reason to keep (nil: none).
        struct SegmentRun {
            var first: UInt64
            var last: UInt64
            var why: String?
            var keys: [String]
        }

        /// One decision per run of consecutive segments with the same decision, timeline by timeline.
        func segmentDecisions(anchor: BackupManifest?, needed: [UInt32: [UInt64: String]]) -> [ExpireDecision] {
            var decisions: [ExpireDecision] = []
            for tli in wal.segments.keys.sorted() {
                var runs: [SegmentRun] = []
                for n in wal.segments[tli]!.keys.sorted() {
                    let why = needed[tli]?[n]
                    let key = wal.segments[tli]![n]!.key
                    if let r = runs.last, r.last + 1 == n, r.why == why {
                        runs[runs.count - 1].last = n
                        runs[runs.count - 1].keys.append(key)
                    } else {
                        runs.append(SegmentRun(first: n, last: n, why: why, keys: [key]))
                    }
                }
                decisions += runs.map { decision(for: $0, timeline: tli, anchor: anchor) }
            }
            return decisions
        }

        /// Keeps a run that something needs (or everything while there is no anchor), deletes the others.
        func decision(for r: SegmentRun, timeline tli: UInt32, anchor: BackupManifest?) -> ExpireDecision {
            let name = { (n: UInt64) in WALSegment(timeline: tli, number: n, segmentSize: seg).name }
            let subject = r.first == r.last ? name(r.first) : "\(name(r.first))…\(name(r.last))"
            if let why = r.why
                ?? (anchor == nil ? "no restorable full backup yet: the WAL is kept for the first one" : nil)
            {
                return .init(subject: subject, kind: "wal", action: .keep, reason: why, keys: r.keys)
            }
            let why =
                anchor.map { a in
                    path.timelines.contains(tli) && r.last < a.startSegment.number
                        ? "before the start of the anchor \(a.id)"
                        : "on timeline \(tli), off the path to the present, and no kept backup needs it"
                } ?? "no restorable backup needs it"
            return .init(subject: subject, kind: "wal", action: .delete, reason: why, keys: r.keys)
        }

        /// Partial segments and backup history files go with their segment; history files stay.
        func partialAndHistoryDecisions(anchor: BackupManifest?, needed: [UInt32: [UInt64: String]]) -> [ExpireDecision]
        {
            var decisions: [ExpireDecision] = []
            for e in wal.others {
                let name = e.file.fileName
                guard let s = WALSegment(name: String(name.prefix(24)), segmentSize: seg) else { continue }
                let kept =
                    needed[s.timeline]?[s.number] != nil || holdAll != nil
                    || (anchor.map { s.number >= $0.startSegment.number } ?? true)
                decisions.append(
                    .init(
                        subject: name, kind: "wal", action: kept ? .keep : .delete,
                        reason: kept
                            ? "belongs to a kept part of the archive" : "belongs to an expired part of the archive",
                        keys: [e.key]))
            }
            for tli in wal.histories.keys.sorted() {
                decisions.append(
                    .init(
                        subject: String(format: "%08X.history", tli), kind: "history", action: .keep,
                        reason: "timeline history is always kept (PostgreSQL uses it to choose new timeline ids)",
                        keys: [Layout.walKey(.history(timeline: tli))]))
            }
            return decisions
        }

        /// Uncommitted backups: garbage once older than the safety age (a younger one may still be running).
        func uncommittedDecisions() -> [ExpireDecision] {
            catalog.uncommitted.map { id in
                let objs = catalog.backupObjects[id] ?? []
                let newest = objs.compactMap(\.lastModified).max() ?? .distantPast
                if let l = claim(onUncommitted: id, live) {
                    return .init(
                        subject: id, kind: "orphan", action: .keep,
                        reason: "a \(l.kind.rawValue) that may be writing it is running (lease \(l.id) on \(l.host))",
                        keys: objs.map(\.key))
                } else if now.timeIntervalSince(newest) > policy.orphanSafetyAge {
                    return .init(
                        subject: id, kind: "orphan", action: .delete,
                        reason:
                            "uncommitted (interrupted backup or expire), untouched for over \(Units.formatDuration(policy.orphanSafetyAge))",
                        keys: objs.map(\.key).sorted())
                } else {
                    return .init(
                        subject: id, kind: "orphan", action: .keep,
                        reason: "uncommitted but recent: a backup may be running", keys: objs.map(\.key))
                }
            }
        }

        /// Drill records, reports, job history and verify runs, by age: one decision per reason.
        func recordDecisions() -> [ExpireDecision] {
            var expiredRecords: [String: [String]] = [:]
            for o in catalog.records {
                let age = now.timeIntervalSince(o.lastModified ?? now)
                let (limit, what) =
                    o.key.hasPrefix(Layout.drillsPrefix)
                    ? (policy.drillRetention, "drill records")
                    : o.key.hasPrefix(Layout.reportsPrefix)
                        ? (policy.reportRetention, "reports")
                        : (
                            policy.reportRetention,
                            o.key.hasPrefix(Layout.historyPrefix) ? "job history" : "verify runs"
                        )
                if age > limit {
                    expiredRecords["\(what) older than \(Units.formatDuration(limit))", default: []].append(o.key)
                }
            }
            return expiredRecords.sorted(by: { $0.key < $1.key }).map { why, keys in
                .init(
                    subject: "\(keys.count) record(s)", kind: "record", action: .delete, reason: why,
                    keys: keys.sorted())
            }
        }
    }

    /// Marks every archived segment of `path` from segment `first` on as needed.
    static func needAlong(
        _ path: TimelinePath, from first: UInt64, wal: WALArchive,
        _ need: (UInt32, UInt64, String) -> Void, _ why: String
    ) {
        for t in path.timelines {
            for n in (wal.segments[t] ?? [:]).keys
            where n >= first && path.timeline(forSegment: n, segmentSize: wal.segmentSize) == t {
                need(t, n, why)
            }
        }
    }

    /// The live lease that protects uncommitted backup `id`: a running backup's (it started before the lease was
    /// taken, less a minute of clock skew, is not its own) or any lease that claims everything.
    static func claim(onUncommitted id: String, _ live: [Lease]) -> Lease? {
        live.first { l in
            l.claimsEverything
                || (l.kind == .backup
                    && String(id.prefix(15))
                        >= String(Layout.backupId(at: l.created.addingTimeInterval(-60), type: "F").prefix(15)))
        }
    }
}
