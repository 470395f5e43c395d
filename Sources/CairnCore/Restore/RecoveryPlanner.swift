import CairnBase
import CairnPostgres
import Foundation

/// Where recovery should stop.
public enum RecoveryTarget: Sendable, Equatable, CustomStringConvertible {
    /// Replay all archived WAL (the default).
    case latest
    /// Stop as soon as the backup is consistent.
    case immediate
    case time(Date)
    case lsn(LSN)
    case xid(String)
    /// A restore point made with `pg_create_restore_point()`.
    case name(String)

    public var description: String {
        switch self {
        case .latest: return "latest (end of the archive)"
        case .immediate: return "immediate (end of the backup)"
        case .time(let d): return "time \(Timestamp.format(d))"
        case .lsn(let l): return "LSN \(l)"
        case .xid(let x): return "transaction \(x)"
        case .name(let n): return "restore point \"\(n)\""
        }
    }
}

/// What PostgreSQL does when recovery reaches its target (`recovery_target_action`).
public enum RecoveryTargetAction: String, Sendable, CaseIterable {
    case promote, pause, shutdown
}

/// The chain of timelines that leads to a target timeline, from its history file.
public struct TimelinePath: Sendable {
    public let target: UInt32
    /// Ancestors in order, each with the LSN where its child began.
    public let switches: [TimelineSwitch]

    public init(target: UInt32, histories: [UInt32: [TimelineSwitch]]) {
        self.target = target
        self.switches = histories[target] ?? []
    }

    /// The timeline that holds `lsn` on this path.
    public func timeline(at lsn: LSN) -> UInt32 {
        for s in switches where lsn < s.switchPoint { return s.parent }
        return target
    }

    /// The timeline whose file holds segment `n` on this path: the newest timeline that began before the
    /// segment's end (the segment holding a switch point is read from the child timeline).
    public func timeline(forSegment n: UInt64, segmentSize: Int64) -> UInt32 {
        let end = LSN((n + 1) * UInt64(segmentSize))
        guard let lastSwitch = switches.last else { return target }
        if lastSwitch.switchPoint < end { return target }
        // Timeline switches[i].parent begins at switches[i - 1].switchPoint (the first at LSN 0).
        for i in stride(from: switches.count - 1, through: 1, by: -1) where switches[i - 1].switchPoint < end {
            return switches[i].parent
        }
        return switches[0].parent
    }

    /// Every timeline on the path, oldest first.
    public var timelines: [UInt32] { switches.map(\.parent) + [target] }

    /// True when the path runs through `timeline` at `lsn`.
    public func contains(timeline: UInt32, at lsn: LSN) -> Bool { self.timeline(at: lsn) == timeline }
}

/// How far one backup can be recovered along a timeline path with the archived WAL.
public struct BackupReach: Sendable, Equatable {
    public var backupId: String
    /// The WAL from the backup's start through its stop segment is all there.
    public var consistent: Bool
    /// The first segment missing after the backup's start, if any before the end of the archive.
    public var firstMissing: String?
    /// The last contiguous segment from the backup's start.
    public var lastSegment: WALSegment?
    /// The end of that segment: no target beyond it is reachable.
    public var endLSN: LSN
    /// When that segment was archived: an upper bound for the commit times it holds.
    public var endTime: Date?
}

/// A span of time (and WAL) that can be recovered to, from a given backup.
public struct RecoverableSpan: Sendable, Codable, Equatable {
    public var backupId: String
    public var timeline: UInt32
    public var fromTime: Date
    public var toTime: Date
    public var fromLSN: LSN
    public var toLSN: LSN

    enum CodingKeys: String, CodingKey {
        case timeline
        case backupId = "backup"
        case fromTime = "from_time"
        case toTime = "to_time"
        case fromLSN = "from_lsn"
        case toLSN = "to_lsn"
    }
}

/// The decision `cairn restore` executes.
public struct RecoveryPlan: Sendable, Codable {
    public var backupId: String
    public var target: String
    public var timeline: UInt32
    /// The first segment replay needs, and the last one when the target bounds it (nil: to the end of the archive).
    public var firstSegment: String
    public var lastNeededSegment: String?
    /// The last segment available on the path from this backup.
    public var lastAvailableSegment: String?
    /// Recovery settings to write, in order.
    public var settings: [Setting]
    public var window: [RecoverableSpan]
    /// The backups laid out, the full one first and `backupId` last (one for a full backup).
    public var chain: [String] = []

    public struct Setting: Sendable, Codable, Equatable {
        public var name: String
        public var value: String
    }

    enum CodingKeys: String, CodingKey {
        case backupId = "backup"
        case target, timeline, settings, window, chain
        case firstSegment = "first_segment"
        case lastNeededSegment = "last_needed_segment"
        case lastAvailableSegment = "last_available_segment"
    }
}

/// Pure planning of restores: which backup reaches a target, with which WAL, and what the window is.
public enum RecoveryPlanner {
    /// How far `backup` reaches along `path`.
    public static func reach(_ backup: BackupManifest, path: TimelinePath, wal: WALArchive) -> BackupReach {
        let seg = wal.segmentSize
        var n = backup.startSegment.number
        var last: WALSegment?
        var endTime: Date?
        var missing: String?
        // The backup's WAL ends just before its stop LSN, which may be exactly where a child timeline begins.
        let lastByte = LSN(max(backup.stop.lsn.value, 1) - 1)
        let onPath =
            path.contains(timeline: backup.start.timeline, at: backup.start.lsn)
            && path.contains(timeline: backup.stop.timeline, at: max(lastByte, backup.start.lsn))
        if onPath {
            while true {
                let tli = path.timeline(forSegment: n, segmentSize: seg)
                let s = WALSegment(timeline: tli, number: n, segmentSize: seg)
                guard let e = wal.entry(s) else {
                    // Past the newest archived segment of the path this is the end of the archive, not a gap.
                    let newer = path.timelines.contains { t in
                        (wal.segments[t] ?? [:]).keys.contains {
                            $0 > n && path.timeline(forSegment: $0, segmentSize: seg) == t
                        }
                    }
                    if newer || n <= backup.stopSegment.number { missing = s.name }
                    break
                }
                last = s
                endTime = max(endTime ?? .distantPast, e.stored ?? .distantPast)
                n += 1
            }
        }
        let consistent = onPath && (last.map { $0.number >= backup.stopSegment.number } ?? false)
        return BackupReach(
            backupId: backup.id, consistent: consistent, firstMissing: missing, lastSegment: last,
            endLSN: last.map { LSN(($0.number + 1) * UInt64(seg)) } ?? backup.stop.lsn,
            endTime: endTime)
    }

    /// The recoverable spans on `timeline` (default: production's, see ``Lineage``), one per consistent backup,
    /// newest first.
    public static func window(_ catalog: Catalog, timeline: UInt32? = nil) -> [RecoverableSpan] {
        let path = TimelinePath(target: timeline ?? catalog.lineage.production, histories: catalog.wal.histories)
        return catalog.restorableBackups.reversed().compactMap { b in
            let r = reach(b, path: path, wal: catalog.wal)
            guard r.consistent else { return nil }
            return RecoverableSpan(
                backupId: b.id, timeline: path.target, fromTime: b.stop.time,
                toTime: max(b.stop.time, r.endTime ?? b.stop.time), fromLSN: b.stop.lsn, toLSN: r.endLSN)
        }
    }

    /// The timeline to recover along: the one given, or production's (for a time target, the timeline of
    /// production's history that was live at that time). Refuses when the repository cannot tell which history
    /// is production's, and a time target that a given timeline cannot reach as it was at that time.
    public static func chooseTimeline(_ catalog: Catalog, target: RecoveryTarget, given: UInt32?) throws -> UInt32 {
        let lineage = catalog.lineage
        guard let given else {
            guard lineage.ambiguous.isEmpty else { throw lineage.ambiguityError() }
            if case .time(let t) = target { return lineage.productionTimeline(at: t) }
            return lineage.production
        }
        guard given == 1 || lineage.statuses[given] != nil else {
            throw CairnError(
                .restoreTarget, "the repository knows no timeline \(given)",
                hint: "`cairn timeline` lists the timelines it holds")
        }
        if case .time(let t) = target,
            let d = lineage.divergence(after: t, on: TimelinePath(target: given, histories: catalog.wal.histories))
        {
            throw CairnError(
                .restoreTarget,
                "time \(Timestamp.format(t)) is before timeline \(d.timeline) began (\(Timestamp.format(d.began))), while timeline \(d.parent) went on past the fork: along timeline \(given) recovery would stop at the fork point, not at that time",
                hint:
                    "give --target-timeline \(d.parent), or leave it out (cairn then recovers along the history that was live at that time)"
            )
        }
        return given
    }

    /// A full backup and how far it reaches along the path of a recovery.
    public struct Candidate: Sendable {
        public var backup: BackupManifest
        public var reach: BackupReach
    }

    /// The physical backups with a complete chain (or only `backupId`), newest first, that become consistent along `path`, with how far
    /// each reaches. Throws naming the problem when there is none.
    static func consistentBackups(_ catalog: Catalog, path: TimelinePath, backupId: String?) throws -> [Candidate] {
        let tli = path.target
        var candidates = catalog.restorableBackups.reversed()
            .map { Candidate(backup: $0, reach: reach($0, path: path, wal: catalog.wal)) }
        if let backupId {
            guard let b = catalog.backup(backupId) else {
                if catalog.damagedManifests.contains(backupId) {
                    throw CairnError(
                        .repoCorrupt,
                        "the manifest of backup \(backupId) (\(Layout.manifestKey(backupId))) fails its own digest: the backup cannot be used",
                        hint: "restore another backup; run `cairn verify` and see runbooks/repository-damaged.md")
                }
                throw CairnError(
                    .backupNotFound, "no committed backup \(backupId) in the repository",
                    hint: "`cairn list` shows the backups")
            }
            guard b.kind.isPhysical else {
                throw CairnError(
                    .backupNotFound, "backup \(backupId) is a logical backup",
                    hint: "restore it with --database and --into")
            }
            _ = try catalog.chain(backupId)  // every backup it builds on is there
            candidates = candidates.filter { $0.backup.id == backupId }
        }
        guard !candidates.isEmpty else {
            throw CairnError(
                .backupNotFound, "the repository has no physical backup", hint: "take one with `cairn backup`")
        }
        let consistent = candidates.filter { $0.reach.consistent }
        guard !consistent.isEmpty else {
            let (b, r) = (candidates[0].backup, candidates[0].reach)
            throw CairnError(
                .walMissing,
                "backup \(b.id) cannot become consistent on timeline \(tli): WAL segment \(r.firstMissing ?? b.stop.wal) is missing",
                hint:
                    "`cairn info` lists the WAL archive's gaps; choose another backup with --backup or another --target-timeline"
            )
        }
        return consistent
    }

    /// Chooses the newest backup that reaches `target` on `timeline` (default: see ``chooseTimeline``) and the
    /// settings that make PostgreSQL stop there. Throws `restore.target-unreachable` naming the window otherwise.
    public static func plan(
        _ catalog: Catalog, target: RecoveryTarget, timeline: UInt32? = nil, backupId: String? = nil,
        action: RecoveryTargetAction = .promote, inclusive: Bool = true, restoreCommand: String,
        now: Date
    ) throws -> RecoveryPlan {
        let tli = try chooseTimeline(catalog, target: target, given: timeline)
        let path = TimelinePath(target: tli, histories: catalog.wal.histories)
        let windows = window(catalog, timeline: tli)
        let consistent = try consistentBackups(catalog, path: path, backupId: backupId)
        let choice = try choose(target, among: consistent, path: path, segmentSize: catalog.wal.segmentSize, now: now) {
            why in
            CairnError(
                .restoreTarget, "target \(target) \(why); recoverable window on timeline \(tli): \(describe(windows))",
                hint: "choose a target inside the window, or --latest")
        }
        let settings = recoverySettings(
            target, stop: choice.targetSetting, timeline: tli, action: action, inclusive: inclusive,
            restoreCommand: restoreCommand)
        let chosen = choice.candidate
        return RecoveryPlan(
            backupId: chosen.backup.id, target: target.description, timeline: tli,
            firstSegment: chosen.backup.start.wal, lastNeededSegment: choice.lastNeeded,
            lastAvailableSegment: chosen.reach.lastSegment?.name, settings: settings, window: windows,
            chain: ((try? catalog.chain(chosen.backup.id)) ?? [chosen.backup]).map(\.id))
    }

    /// The backup a target recovers from, the setting that stops PostgreSQL there, and the last segment replay needs
    /// when the target bounds it.
    struct Choice {
        var candidate: Candidate
        var targetSetting: RecoveryPlan.Setting?
        var lastNeeded: String?
    }

    /// The newest consistent backup whose reach contains `target` (for a target without a position, the newest);
    /// `refuse` says why none does.
    static func choose(
        _ target: RecoveryTarget, among consistent: [Candidate], path: TimelinePath, segmentSize: Int64,
        now: Date, refuse: (String) -> CairnError
    ) throws -> Choice {
        switch target {
        case .time(let t):
            if t > now { throw refuse("is in the future") }
            guard
                let c = consistent.first(where: { $0.backup.stop.time <= t && ($0.reach.endTime ?? .distantPast) >= t })
            else {
                if let oldest = consistent.last, t < oldest.backup.stop.time {
                    throw refuse("is before the oldest reachable point")
                }
                throw refuse("is beyond the archived WAL or in a gap")
            }
            return Choice(candidate: c, targetSetting: .init(name: "recovery_target_time", value: pgTimestamp(t)))
        case .lsn(let l):
            guard let c = consistent.first(where: { $0.backup.stop.lsn <= l && $0.reach.endLSN > l }) else {
                if let oldest = consistent.last, l < oldest.backup.stop.lsn {
                    throw refuse("is before the oldest reachable point")
                }
                throw refuse("is beyond the archived WAL or in a gap")
            }
            let n = l.segment(size: segmentSize)
            let needed = WALSegment(
                timeline: path.timeline(forSegment: n, segmentSize: segmentSize), number: n,
                segmentSize: segmentSize
            ).name
            return Choice(
                candidate: c, targetSetting: .init(name: "recovery_target_lsn", value: l.description),
                lastNeeded: needed)
        case .immediate:
            return Choice(
                candidate: consistent[0], targetSetting: .init(name: "recovery_target", value: "immediate"),
                lastNeeded: consistent[0].backup.stop.wal)
        case .latest:
            return Choice(candidate: consistent[0])
        case .xid(let x):
            return Choice(candidate: consistent[0], targetSetting: .init(name: "recovery_target_xid", value: x))
        case .name(let n):
            return Choice(candidate: consistent[0], targetSetting: .init(name: "recovery_target_name", value: n))
        }
    }

    /// The recovery settings, in order: restore_command, the target and what to do there, and the timeline.
    static func recoverySettings(
        _ target: RecoveryTarget, stop: RecoveryPlan.Setting?, timeline tli: UInt32,
        action: RecoveryTargetAction, inclusive: Bool, restoreCommand: String
    ) -> [RecoveryPlan.Setting] {
        var settings: [RecoveryPlan.Setting] = [.init(name: "restore_command", value: restoreCommand)]
        if let stop { settings.append(stop) }
        if target != .latest {
            if !inclusive && target != .immediate {
                settings.append(.init(name: "recovery_target_inclusive", value: "off"))
            }
            settings.append(.init(name: "recovery_target_action", value: action.rawValue))
        }
        // Always the number: with 'latest' PostgreSQL follows the newest history file it can fetch, which may be
        // a copy's.
        settings.append(.init(name: "recovery_target_timeline", value: String(tli)))
        return settings
    }

    /// "from 2026-11-24T10:00:00Z to 2026-11-25T09:58:12Z (backup X), …" or "empty".
    public static func describe(_ spans: [RecoverableSpan]) -> String {
        guard !spans.isEmpty else { return "empty (no backup with complete WAL)" }
        let merged = merge(spans)
        return merged.map {
            "\(Timestamp.format($0.fromTime)) … \(Timestamp.format($0.toTime)) (LSN \($0.fromLSN) … \($0.toLSN))"
        }
        .joined(separator: ", ")
    }

    /// Spans merged where they overlap, oldest first.
    public static func merge(_ spans: [RecoverableSpan]) -> [RecoverableSpan] {
        var out: [RecoverableSpan] = []
        for s in spans.sorted(by: { $0.fromTime < $1.fromTime }) {
            if var last = out.last, s.fromTime <= last.toTime {
                last.toTime = max(last.toTime, s.toTime)
                last.toLSN = max(last.toLSN, s.toLSN)
                out[out.count - 1] = last
            } else {
                out.append(s)
            }
        }
        return out
    }

    /// `2026-11-25 14:32:00.123456+00` for recovery_target_time.
    public static func pgTimestamp(_ d: Date) -> String {
        // DateFormatter keeps only milliseconds; PostgreSQL timestamps have microseconds.
        let micros = Int64((d.timeIntervalSince1970 * 1_000_000).rounded())
        var t = time_t(micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000)
        let frac = micros - Int64(t) * 1_000_000
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, frac)
    }
}
