import CairnBase
import Foundation
import Testing

@testable import CairnCore
@testable import CairnPostgres

// Unit tests for Sources/CairnCore/Restore/RecoveryPlanner.swift, on catalogs built in memory.
//
// The scenarios share one simple model of a cluster: WAL advances one 16 MiB segment per minute, so the LSN
// at the start of segment n is written at minute n, and segment n is archived (stored) at minute n + 1.

private let segmentSize: Int64 = 16 << 20
private let t0 = Date(timeIntervalSince1970: 1_790_000_000)  // 2026-09-21 14:13:20 UTC

/// Minute `m` of the scenario.
private func minute(_ m: Double) -> Date { t0.addingTimeInterval(m * 60) }

/// The LSN `offset` bytes into segment `n`.
private func at(_ n: UInt64, _ offset: UInt64 = 0) -> LSN { LSN(n * UInt64(segmentSize) + offset) }

/// When the model writes `lsn`.
private func timeOf(_ lsn: LSN) -> Date { minute(Double(lsn.value) / Double(segmentSize)) }

/// The file name of segment `n` on `timeline`.
private func seg(_ timeline: UInt32, _ n: UInt64) -> String {
    WALSegment(timeline: timeline, number: n, segmentSize: segmentSize).name
}

/// Builds a `Catalog` step by step.
private struct Scenario {
    var backups: [BackupManifest] = []
    var wal = WALArchive(segmentSize: segmentSize)

    var records: [UInt32: TimelineRecord] = [:]

    /// Archives segments `range` of `timeline`; each is stored a minute after it began (or `storedAt(n)`).
    mutating func archive(_ range: ClosedRange<UInt64>, timeline: UInt32 = 1, storedAt: ((UInt64) -> Date)? = nil) {
        for n in range {
            let name = seg(timeline, n)
            wal.segments[timeline, default: [:]][n] = WALArchive.Entry(
                file: .segment(name), key: "wal/\(String(format: "%08X", timeline))/\(name).zst", storedSize: 1 << 20,
                stored: storedAt?(n) ?? minute(Double(n + 1)))
        }
    }

    /// Records what `timeline` is (as init, backup, wal-push or the operator would).
    mutating func decide(_ timeline: UInt32, _ verdict: TimelineRecord.Verdict) {
        records[timeline] = TimelineRecord(
            timeline: timeline, verdict: verdict, decidedBy: "test", reason: "test", at: t0)
    }

    /// Removes archived segments (a gap).
    mutating func lose(_ n: UInt64, timeline: UInt32 = 1) { wal.segments[timeline]?[n] = nil }

    /// Records `timeline`'s history file: each ancestor and the LSN where its child began. The file is archived
    /// at `began` (by default half a minute after the last switch point was written).
    mutating func history(of timeline: UInt32, _ switches: [(parent: UInt32, at: LSN)], began: Date? = nil) {
        wal.histories[timeline] = switches.map {
            TimelineSwitch(parent: $0.parent, switchPoint: $0.at, reason: "promoted")
        }
        wal.historyStored[timeline] = began ?? switches.last.map { timeOf($0.at).addingTimeInterval(30) }
    }

    /// A full backup between two LSNs, timed by the model unless told otherwise.
    @discardableResult
    mutating func backup(
        _ id: String, from start: LSN, to stop: LSN, timeline: UInt32 = 1, stopTimeline: UInt32? = nil,
        kind: BackupManifest.Kind = .full
    ) -> BackupManifest {
        let stopTLI = stopTimeline ?? timeline
        let m = BackupManifest(
            format: BackupManifest.currentFormat, id: id, kind: kind, systemIdentifier: "7300000000000000001",
            pgVersionNum: 150_018, walSegmentSize: segmentSize,
            start: .init(
                lsn: start, timeline: timeline, time: timeOf(start),
                wal: WALSegment(timeline: timeline, lsn: start, segmentSize: segmentSize).name),
            stop: .init(
                lsn: stop, timeline: stopTLI, time: timeOf(stop),
                wal: WALSegment(timeline: stopTLI, lsn: stop, segmentSize: segmentSize).name),
            archives: [], size: 1 << 30, storedSize: 1 << 28, durationSeconds: 60, cairnVersion: "test", host: "db1")
        backups.append(m)
        return m
    }

    var catalog: Catalog {
        let cluster = ClusterInfo(
            systemIdentifier: "7300000000000000001", versionNum: 150_018, walSegmentSize: segmentSize,
            dataDirectory: "/var/lib/postgresql/15/main")
        var c = Catalog(
            info: RepositoryInfo(cluster: cluster, created: t0, cairnVersion: "test"), backups: backups, wal: wal)
        c.timelineRecords = records
        return c
    }

    func backup(_ id: String) -> BackupManifest { backups.first { $0.id == id }! }

    /// One timeline; segments 1…20 archived (the newest stored at minute 21); two backups:
    /// B1 from 2/…28 to 3/…100 (stops just after minute 3), B2 from 10/…28 to 11/800000 (stops at minute 11.5).
    static var oneTimeline: Scenario {
        var s = Scenario()
        s.archive(1...20)
        s.backup("B1", from: at(2, 0x28), to: at(3, 0x100))
        s.backup("B2", from: at(10, 0x28), to: at(11, 0x80_0000))
        return s
    }

    /// oneTimeline, then a standby was promoted at 20/800000 (timeline 2, archived 20…26) while the old primary went
    /// on writing timeline 1 up to segment 24. B3 was taken on the old primary across the split.
    static var promoted: Scenario {
        var s = Scenario()
        s.archive(1...24)
        s.backup("B1", from: at(2, 0x28), to: at(3, 0x100))
        s.history(of: 2, [(parent: 1, at: at(20, 0x80_0000))])
        s.archive(20...26, timeline: 2)
        s.backup("B3", from: at(19, 0x28), to: at(21, 0x100))
        return s
    }

    /// promoted, with timeline 2 recorded as production's (the standby's promotion was a failover).
    static var failedOver: Scenario {
        var s = promoted
        s.decide(2, .production)
        return s
    }
}

private let now = minute(30)
private let restoreCommand = "cairn wal-fetch %f %p"

private func plan(
    _ s: Scenario, _ target: RecoveryTarget, timeline: UInt32? = nil, backupId: String? = nil,
    action: RecoveryTargetAction = .promote, inclusive: Bool = true
) throws -> RecoveryPlan {
    try RecoveryPlanner.plan(
        s.catalog, target: target, timeline: timeline, backupId: backupId, action: action,
        inclusive: inclusive, restoreCommand: restoreCommand, now: now)
}

private func settings(_ p: RecoveryPlan) -> [String] { p.settings.map { "\($0.name)=\($0.value)" } }

/// The tests of this file, so that `--filter RecoveryPlannerTests` runs them all.
@Suite struct RecoveryPlannerTests {}

// MARK: - Timeline paths

extension RecoveryPlannerTests {
    @Suite struct TimelinePaths {
        /// Timeline 2 branched from 1 in the middle of segment 20; timeline 3 branched from 2 exactly where segment 30 begins.
        static let histories: [UInt32: [TimelineSwitch]] = [
            2: [TimelineSwitch(parent: 1, switchPoint: at(20, 0x80_0000), reason: "")],
            3: [
                TimelineSwitch(parent: 1, switchPoint: at(20, 0x80_0000), reason: ""),
                TimelineSwitch(parent: 2, switchPoint: at(30), reason: "")
            ]
        ]

        @Test func timelineAtAnLSN() {
            let path = TimelinePath(target: 3, histories: Self.histories)
            #expect(path.timelines == [1, 2, 3])
            #expect(path.timeline(at: at(0)) == 1)
            #expect(path.timeline(at: at(20, 0x7F_FFFF)) == 1)
            #expect(path.timeline(at: at(20, 0x80_0000)) == 2)  // the switch point is the child's first byte
            #expect(path.timeline(at: at(29, 0xFF_FFFF)) == 2)
            #expect(path.timeline(at: at(30)) == 3)
            #expect(path.timeline(at: LSN(UInt64.max)) == 3)
            #expect(path.contains(timeline: 1, at: at(5)))
            #expect(!path.contains(timeline: 1, at: at(25)))

            let two = TimelinePath(target: 2, histories: Self.histories)
            #expect(two.timelines == [1, 2])
            #expect(two.timeline(at: at(20, 0x7F_FFFF)) == 1)
            #expect(two.timeline(at: at(35)) == 2)
        }

        @Test(arguments: [
            (UInt64(0), UInt32(1)), (19, 1),
            (20, 2),  // holds the 1 → 2 switch: read from the child
            (21, 2), (29, 2),  // 29 ends exactly where timeline 3 begins: all of it is timeline 2's
            (30, 3), (31, 3), (1000, 3)
        ])
        func timelineForASegment(number: UInt64, expected: UInt32) {
            let path = TimelinePath(target: 3, histories: Self.histories)
            #expect(path.timeline(forSegment: number, segmentSize: segmentSize) == expected)
        }

        @Test func segmentBoundariesAtOtherSegmentSizes() {
            // The same switch points with 64 MiB segments: 0/14800000 (328 MiB) lies in segment 5 (320…384 MiB) and
            // 0/1E000000 (480 MiB) inside segment 7 (448…512 MiB).
            let path = TimelinePath(target: 3, histories: Self.histories)
            let big: Int64 = 64 << 20
            #expect(path.timeline(forSegment: 4, segmentSize: big) == 1)
            #expect(path.timeline(forSegment: 5, segmentSize: big) == 2)
            #expect(path.timeline(forSegment: 6, segmentSize: big) == 2)
            #expect(path.timeline(forSegment: 7, segmentSize: big) == 3)
        }

        @Test func aTimelineWithoutHistoryIsItsOwnPath() {
            let one = TimelinePath(target: 1, histories: Self.histories)
            #expect(one.timelines == [1])
            #expect(one.timeline(at: at(50)) == 1)
            #expect(one.timeline(forSegment: 50, segmentSize: segmentSize) == 1)
            let unknown = TimelinePath(target: 9, histories: [:])
            #expect(unknown.timeline(forSegment: 0, segmentSize: segmentSize) == 9)
        }

        @Test func aSwitchExactlyOnASegmentBoundary() {
            let path = TimelinePath(
                target: 2, histories: [2: [TimelineSwitch(parent: 1, switchPoint: at(20), reason: "")]])
            #expect(path.timeline(forSegment: 19, segmentSize: segmentSize) == 1)
            #expect(path.timeline(forSegment: 20, segmentSize: segmentSize) == 2)
            #expect(path.timeline(at: at(19, 0xFF_FFFF)) == 1)
            #expect(path.timeline(at: at(20)) == 2)
        }
    }
}

// MARK: - Reach

extension RecoveryPlannerTests {
    @Suite struct Reach {
        private func reach(_ s: Scenario, _ id: String, timeline: UInt32 = 1) -> BackupReach {
            RecoveryPlanner.reach(
                s.backup(id), path: TimelinePath(target: timeline, histories: s.wal.histories), wal: s.wal)
        }

        @Test func completeWALReachesTheEndOfTheArchive() {
            let r = reach(.oneTimeline, "B1")
            #expect(r.backupId == "B1")
            #expect(r.consistent)
            #expect(r.firstMissing == nil)
            #expect(r.lastSegment?.name == seg(1, 20))
            #expect(r.endLSN == at(21))
            #expect(r.endTime == minute(21))
        }

        @Test func aGapBeforeTheStopSegmentMakesTheBackupInconsistent() {
            var s = Scenario.oneTimeline
            s.lose(3)  // B1's stop segment
            let r = reach(s, "B1")
            #expect(!r.consistent)
            #expect(r.firstMissing == seg(1, 3))
            #expect(r.lastSegment?.name == seg(1, 2))
            #expect(reach(s, "B2").consistent)
        }

        @Test func withoutItsStartSegmentABackupReachesNothing() {
            var s = Scenario.oneTimeline
            s.lose(10)
            let r = reach(s, "B2")
            #expect(!r.consistent)
            #expect(r.firstMissing == seg(1, 10))
            #expect(r.lastSegment == nil)
            #expect(r.endLSN == s.backup("B2").stop.lsn)
            #expect(r.endTime == nil)
        }

        @Test func aGapAfterTheStopEndsTheReachThere() {
            var s = Scenario.oneTimeline
            s.lose(15)
            for id in ["B1", "B2"] {
                let r = reach(s, id)
                #expect(r.consistent)
                #expect(r.firstMissing == seg(1, 15))
                #expect(r.lastSegment?.name == seg(1, 14))
                #expect(r.endLSN == at(15))
                #expect(r.endTime == minute(15))
            }
        }

        @Test func theStopSegmentItselfIsEnough() {
            var s = Scenario()
            s.archive(2...3)
            s.backup("B", from: at(2, 0x28), to: at(3, 0x100))
            let r = reach(s, "B")
            #expect(r.consistent)
            #expect(r.firstMissing == nil)  // segment 4 is simply not archived yet
            #expect(r.endLSN == at(4))
        }

        @Test func aBackupFollowsItsTimelineAcrossAPromotion() {
            let s = Scenario.promoted
            let r = reach(s, "B1", timeline: 2)
            #expect(r.consistent)
            #expect(r.lastSegment == WALSegment(timeline: 2, number: 26, segmentSize: segmentSize))
            #expect(r.endLSN == at(27))
            #expect(r.endTime == minute(27))
        }

        @Test func aBackupWhoseStopIsOnAnAbandonedBranchIsNotOnThePath() {
            // B3 stopped on timeline 1 after timeline 2 had branched off: its data is not in timeline 2's past.
            let s = Scenario.promoted
            let off = reach(s, "B3", timeline: 2)
            #expect(!off.consistent)
            #expect(off.lastSegment == nil)
            let on = reach(s, "B3", timeline: 1)
            #expect(on.consistent)
            #expect(on.lastSegment?.name == seg(1, 24))
        }

        @Test func theParentsLaterSegmentsAreNotAGapOnTheChildsPath() {
            // The old primary archived timeline 1 up to segment 30; timeline 2's archive ends at 26. On timeline 2's
            // path, segments 27… do not exist yet: that is the end of the archive, not a hole.
            var s = Scenario.promoted
            s.archive(25...30)
            let r = reach(s, "B1", timeline: 2)
            #expect(r.consistent)
            #expect(r.endLSN == at(27))
            do {
                #expect(r.firstMissing == nil)
            }
        }
    }
}

// MARK: - Plans

extension RecoveryPlannerTests {
    @Suite struct Plans {
        @Test func latestPicksTheNewestConsistentBackup() throws {
            let p = try plan(.oneTimeline, .latest)
            #expect(p.backupId == "B2")
            #expect(p.timeline == 1)
            #expect(p.firstSegment == seg(1, 10))
            #expect(p.lastNeededSegment == nil)
            #expect(p.lastAvailableSegment == seg(1, 20))
            #expect(settings(p) == ["restore_command=\(restoreCommand)", "recovery_target_timeline=1"])
            #expect(p.target == RecoveryTarget.latest.description)
        }

        @Test func latestSkipsABackupThatCannotBecomeConsistent() throws {
            var s = Scenario.oneTimeline
            s.lose(11)  // B2's stop segment
            let p = try plan(s, .latest)
            #expect(p.backupId == "B1")
            #expect(p.lastAvailableSegment == seg(1, 10))
        }

        @Test(arguments: [(12.0, "B2"), (11.5, "B2"), (21.0, "B2"), (11.4, "B1"), (5.0, "B1")])
        func timePicksTheNewestBackupStoppedBeforeIt(m: Double, expected: String) throws {
            let p = try plan(.oneTimeline, .time(minute(m)))
            #expect(p.backupId == expected)
            #expect(p.lastNeededSegment == nil, "a time target does not bound the WAL ahead of replay")
            #expect(
                p.settings.first { $0.name == "recovery_target_time" }?.value == RecoveryPlanner.pgTimestamp(minute(m)))
        }

        @Test func timeSettings() throws {
            let p = try plan(.oneTimeline, .time(minute(12)))
            #expect(
                settings(p) == [
                    "restore_command=\(restoreCommand)",
                    "recovery_target_time=2026-09-21 14:25:20.000000+00",
                    "recovery_target_action=promote",
                    "recovery_target_timeline=1"
                ])
            let q = try plan(.oneTimeline, .time(minute(12)), timeline: 1, action: .pause, inclusive: false)
            #expect(
                settings(q) == [
                    "restore_command=\(restoreCommand)",
                    "recovery_target_time=2026-09-21 14:25:20.000000+00",
                    "recovery_target_inclusive=off",
                    "recovery_target_action=pause",
                    "recovery_target_timeline=1"
                ])
        }

        @Test(arguments: [
            (31.0, "is in the future"),
            (25.0, "is beyond the archived WAL or in a gap"),  // archived through minute 21, now is 30
            (21.1, "is beyond the archived WAL or in a gap"),
            (2.0, "is before the oldest reachable point"),
            (3.0, "is before the oldest reachable point")  // B1 stops a moment after minute 3
        ])
        func timeOutsideTheWindowIsRefused(m: Double, why: String) throws {
            let e = #expect(throws: CairnError.self) { try plan(.oneTimeline, .time(minute(m))) }
            #expect(e?.code == .restoreTarget)
            #expect(e?.message.contains(why) == true, "\(e?.message ?? "")")
            #expect(e?.message.contains("recoverable window on timeline 1") == true)
            // The window is named: from B1's stop to the last archived segment.
            #expect(e?.message.contains(Timestamp.format(Scenario.oneTimeline.backup("B1").stop.time)) == true)
            #expect(e?.message.contains(Timestamp.format(minute(21))) == true)
            #expect(e?.hint != nil)
        }

        @Test func timeInAGapIsRefusedButAfterTheGapANewerBackupServes() throws {
            var s = Scenario.oneTimeline
            s.lose(15)
            let e = #expect(throws: CairnError.self) { try plan(s, .time(minute(17))) }
            #expect(e?.code == .restoreTarget)
            #expect(e?.message.contains("recoverable window") == true)
            s.backup("B4", from: at(16, 0x28), to: at(16, 0x1000))
            #expect(try plan(s, .time(minute(17))).backupId == "B4")
            #expect(try plan(s, .time(minute(14.5))).backupId == "B2")
        }

        @Test func lsnTargets() throws {
            let p = try plan(.oneTimeline, .lsn(at(12, 0x1234)))
            #expect(p.backupId == "B2")
            #expect(p.lastNeededSegment == seg(1, 12))
            #expect(
                settings(p) == [
                    "restore_command=\(restoreCommand)",
                    "recovery_target_lsn=0/C001234",
                    "recovery_target_action=promote",
                    "recovery_target_timeline=1"
                ])
            #expect(try plan(.oneTimeline, .lsn(at(11, 0x7F_FFFF))).backupId == "B1")
            #expect(try plan(.oneTimeline, .lsn(at(11, 0x80_0000))).backupId == "B2")
            #expect(try plan(.oneTimeline, .lsn(at(3, 0x100))).backupId == "B1")
            #expect(try plan(.oneTimeline, .lsn(at(20, 0xFF_FFFF))).lastNeededSegment == seg(1, 20))
        }

        @Test(arguments: [
            (at(21, 1), "is beyond the archived WAL or in a gap"),
            (at(400), "is beyond the archived WAL or in a gap"),
            (at(3, 0xFF), "is before the oldest reachable point"),
            (at(0), "is before the oldest reachable point")
        ])
        func lsnOutsideTheWindowIsRefused(lsn: LSN, why: String) {
            let e = #expect(throws: CairnError.self) { try plan(.oneTimeline, .lsn(lsn)) }
            #expect(e?.code == .restoreTarget)
            #expect(e?.message.contains(why) == true, "\(e?.message ?? "")")
            #expect(e?.message.contains("recoverable window") == true)
            #expect(e?.message.contains("0/3000100") == true)
            #expect(e?.message.contains("0/15000000") == true)
        }

        @Test func immediateStopsAtTheEndOfTheNewestBackup() throws {
            let p = try plan(.oneTimeline, .immediate, inclusive: false)
            #expect(p.backupId == "B2")
            #expect(p.lastNeededSegment == seg(1, 11))
            // recovery_target_inclusive does not apply to 'immediate'.
            #expect(
                settings(p) == [
                    "restore_command=\(restoreCommand)",
                    "recovery_target=immediate",
                    "recovery_target_action=promote",
                    "recovery_target_timeline=1"
                ])
        }

        @Test func xidAndRestorePointTargets() throws {
            let x = try plan(.oneTimeline, .xid("4711"), inclusive: false)
            #expect(x.backupId == "B2")
            #expect(settings(x).dropFirst().first == "recovery_target_xid=4711")
            #expect(settings(x).contains("recovery_target_inclusive=off"))
            let n = try plan(.oneTimeline, .name("before-upgrade"), action: .shutdown)
            #expect(
                settings(n) == [
                    "restore_command=\(restoreCommand)",
                    "recovery_target_name=before-upgrade",
                    "recovery_target_action=shutdown",
                    "recovery_target_timeline=1"
                ])
        }

        static let everyTarget: [RecoveryTarget] = [
            .latest, .immediate, .time(minute(12)), .lsn(at(12)), .xid("9"), .name("p")
        ]

        @Test(arguments: everyTarget)
        func restoreCommandComesFirstAndTimelineLast(target: RecoveryTarget) throws {
            for (timeline, value) in [(UInt32?.none, "1"), (1, "1")] {
                let p = try plan(.oneTimeline, target, timeline: timeline, inclusive: false)
                #expect(p.settings.first == RecoveryPlan.Setting(name: "restore_command", value: restoreCommand))
                #expect(p.settings.last == RecoveryPlan.Setting(name: "recovery_target_timeline", value: value))
                #expect(Set(p.settings.map(\.name)).count == p.settings.count, "no setting twice")
                #expect(p.window.count == 2)
            }
        }

        @Test func anExplicitBackupIsUsedEvenWhenANewerOneExists() throws {
            let p = try plan(.oneTimeline, .latest, backupId: "B1")
            #expect(p.backupId == "B1")
            #expect(p.firstSegment == seg(1, 2))
            let t = try plan(.oneTimeline, .time(minute(15)), backupId: "B1")
            #expect(t.backupId == "B1")
        }

        @Test func anUnknownBackupIsNotFound() {
            let e = #expect(throws: CairnError.self) { try plan(.oneTimeline, .latest, backupId: "20260101T000000Z") }
            #expect(e?.code == .backupNotFound)
            #expect(e?.message.contains("20260101T000000Z") == true)
        }

        @Test func aLogicalBackupCannotBeReplayed() throws {
            var s = Scenario.oneTimeline
            s.backup("L1", from: at(12), to: at(12, 0x10), kind: .logical)
            let e = #expect(throws: CairnError.self) { try plan(s, .latest, backupId: "L1") }
            #expect(e?.code == .backupNotFound)
            #expect(e?.message.contains("logical") == true)
            #expect(try plan(s, .latest).backupId == "B2")  // and it is never picked by itself
        }

        @Test func aRepositoryWithoutBackupsHasNothingToRestore() {
            var s = Scenario()
            s.archive(1...5)
            let e = #expect(throws: CairnError.self) { try plan(s, .latest) }
            #expect(e?.code == .backupNotFound)
        }

        @Test func theOnlyBackupWithoutItsWALIsReported() {
            var s = Scenario()
            s.archive(1...2)
            s.archive(4...8)
            s.backup("B", from: at(2, 0x28), to: at(4, 0x100))
            let e = #expect(throws: CairnError.self) { try plan(s, .latest) }
            #expect(e?.code == .walMissing)
            #expect(e?.message.contains(seg(1, 3)) == true)
            #expect(e?.message.contains("backup B ") == true)
            #expect(e?.hint != nil)
            // A target in its would-be window is refused the same way: there is no consistent backup at all.
            #expect(throws: CairnError.self) { try plan(s, .time(minute(6))) }
        }

        @Test func theWindowListsEachConsistentBackupNewestFirst() {
            var s = Scenario.oneTimeline
            s.backup("B0", from: at(1), to: at(1, 0x10))
            s.lose(1)  // B0 cannot become consistent
            let w = RecoveryPlanner.window(s.catalog)
            #expect(w.map(\.backupId) == ["B2", "B1"])
            #expect(
                w[0]
                    == RecoverableSpan(
                        backupId: "B2", timeline: 1, fromTime: minute(11.5), toTime: minute(21),
                        fromLSN: at(11, 0x80_0000), toLSN: at(21)))
            #expect(w[1].fromLSN == at(3, 0x100))
            #expect(w[1].toTime == minute(21))
        }

        @Test func productionIsTheNewestTimelineWithEvidenceNotTheNewestTimeline() {
            #expect(Scenario.oneTimeline.catalog.lineage.production == 1)
            #expect(Scenario().catalog.lineage.production == 1)
            // A promotion nobody vouched for: production stays on the timeline of its backups; 2 is undecided.
            let promoted = Scenario.promoted.catalog.lineage
            #expect(promoted.production == 1)
            #expect(promoted.ambiguous == [2])
            #expect(Scenario.failedOver.catalog.lineage.production == 2)
            #expect(Scenario.failedOver.catalog.lineage.ambiguous.isEmpty)
            var copy = Scenario.promoted
            copy.decide(2, .copy)
            #expect(copy.catalog.lineage.production == 1)
            #expect(copy.catalog.lineage.statuses[2] == .copy)
            #expect(copy.catalog.lineage.ambiguous.isEmpty)
            // A backup on a timeline is production's evidence, and its ancestors are production's history.
            var b = Scenario()
            b.archive(1...2)
            b.history(of: 3, [(parent: 1, at: at(1))])
            b.backup("B", from: at(1, 0x28), to: at(2), timeline: 3)
            #expect(b.catalog.lineage.production == 3)
            #expect(b.catalog.lineage.statuses[1] == .production)
            // An operator's record beats a backup's evidence.
            b.decide(3, .copy)
            #expect(b.catalog.lineage.production == 1)
        }
    }
}

// MARK: - Timelines in plans

extension RecoveryPlannerTests {
    @Suite struct PlansAcrossTimelines {
        @Test func aBackupFromBeforeTheBranchServesTheNewTimeline() throws {
            let p = try plan(.failedOver, .latest)
            #expect(p.timeline == 2)
            #expect(p.backupId == "B1")  // B3 is newer but on the abandoned branch
            #expect(p.firstSegment == seg(1, 2))
            #expect(p.lastAvailableSegment == seg(2, 26))
            // Never 'latest': PostgreSQL would follow whatever newer history file it can fetch, a copy's too.
            #expect(settings(p).last == "recovery_target_timeline=2")

            let t = try plan(.promoted, .time(minute(25)), timeline: 2)
            #expect(t.backupId == "B1")
            #expect(settings(t).last == "recovery_target_timeline=2")
        }

        @Test func aBackupFromAfterTheBranchDoesNotServeTheNewTimeline() throws {
            let e = #expect(throws: CairnError.self) { try plan(.promoted, .latest, timeline: 2, backupId: "B3") }
            #expect(e?.code == .walMissing)
            #expect(e?.message.contains("timeline 2") == true)
            // On its own timeline it is the newest.
            let p = try plan(.promoted, .latest, timeline: 1)
            #expect(p.backupId == "B3")
            #expect(p.lastAvailableSegment == seg(1, 24))
            #expect(settings(p).last == "recovery_target_timeline=1")
        }

        @Test func aBackupTakenOnTheNewTimelineIsNotOnTheOldOnesPath() throws {
            var s = Scenario.promoted
            s.backup("B5", from: at(23, 0x28), to: at(24, 0x100), timeline: 2)
            #expect(try plan(s, .latest).backupId == "B5")
            #expect(try plan(s, .latest, timeline: 1).backupId == "B3")
            let e = #expect(throws: CairnError.self) { try plan(s, .latest, timeline: 1, backupId: "B5") }
            #expect(e?.code == .walMissing)
        }

        @Test func aBackupThatStopsOnTheNewTimelineAfterStartingOnTheOld() throws {
            // Taken on a standby while it was promoted: starts on 1, stops on 2.
            var s = Scenario.promoted
            s.backup("B6", from: at(19, 0x100), to: at(21, 0x200), timeline: 1, stopTimeline: 2)
            let p = try plan(s, .latest)
            #expect(p.backupId == "B6")
            #expect(p.firstSegment == seg(1, 19))
            #expect(try plan(s, .immediate).lastNeededSegment == seg(2, 21))
        }

        @Test func aBranchExactlyAtTheBackupsStopKeepsTheBackupUsable() throws {
            // `cairn restore --immediate` followed by promotion ends recovery at the end of the backup-end record, which
            // is the backup's stop LSN, so the new timeline's switch point equals it. All of the backup's WAL is in
            // timeline 2's past (PostgreSQL itself checks `minRecoveryPoint - 1` against the history).
            var s = Scenario()
            s.archive(1...3)
            s.backup("B", from: at(2, 0x28), to: at(3, 0x100))
            s.history(of: 2, [(parent: 1, at: at(3, 0x100))])
            s.archive(3...6, timeline: 2)
            s.decide(2, .production)
            do {
                let r = RecoveryPlanner.reach(
                    s.backup("B"), path: TimelinePath(target: 2, histories: s.wal.histories), wal: s.wal)
                #expect(r.consistent)
                #expect(try plan(s, .latest).backupId == "B")
            }
        }

        @Test func theLastNeededSegmentIsTheFileTheArchiveHolds() throws {
            // A target just before the switch point, inside the switch segment: replaying timeline 2, PostgreSQL reads
            // that segment from timeline 2 (timeline 1's segment 20 goes on with the abandoned branch), as
            // TimelinePath.timeline(forSegment:) says.
            let p = try plan(.promoted, .lsn(at(20, 0x100)), timeline: 2)
            #expect(p.backupId == "B1")
            do {
                #expect(p.lastNeededSegment == seg(2, 20))
            }
        }
    }
}

// MARK: - Windows and timestamps

extension RecoveryPlannerTests {
    @Suite struct WindowsAndTimestamps {
        private func span(_ id: String, _ from: Double, _ to: Double) -> RecoverableSpan {
            RecoverableSpan(
                backupId: id, timeline: 1, fromTime: minute(from), toTime: minute(to),
                fromLSN: at(UInt64(from)), toLSN: at(UInt64(to)))
        }

        @Test func overlappingSpansMerge() {
            let merged = RecoveryPlanner.merge([span("C", 30, 40), span("B", 5, 20), span("A", 0, 10)])
            #expect(merged.count == 2)
            #expect(merged[0].fromTime == minute(0))
            #expect(merged[0].toTime == minute(20))
            #expect(merged[0].fromLSN == at(0))
            #expect(merged[0].toLSN == at(20))
            #expect(merged[1] == span("C", 30, 40))
        }

        @Test func aSpanInsideAnotherDoesNotShrinkIt() {
            let merged = RecoveryPlanner.merge([span("A", 0, 30), span("B", 5, 10)])
            #expect(merged.count == 1)
            #expect(merged[0].toTime == minute(30))
            #expect(merged[0].toLSN == at(30))
        }

        @Test func touchingSpansMergeAndSeparateOnesStaySorted() {
            #expect(RecoveryPlanner.merge([span("B", 10, 20), span("A", 0, 10)]).map(\.toTime) == [minute(20)])
            let apart = RecoveryPlanner.merge([span("B", 11, 20), span("A", 0, 10), span("C", 21, 22)])
            #expect(apart.map(\.backupId) == ["A", "B", "C"])
            #expect(RecoveryPlanner.merge([]).isEmpty)
        }

        @Test func describeNamesTheMergedWindow() {
            #expect(RecoveryPlanner.describe([]) == "empty (no backup with complete WAL)")
            let text = RecoveryPlanner.describe([span("B", 5, 20), span("A", 0, 10), span("C", 30, 40)])
            #expect(
                text == "\(Timestamp.format(minute(0))) … \(Timestamp.format(minute(20))) (LSN 0/0 … 0/14000000), "
                    + "\(Timestamp.format(minute(30))) … \(Timestamp.format(minute(40))) (LSN 0/1E000000 … 0/28000000)")
        }

        @Test(arguments: [
            (1_764_081_120.0, "2025-11-25 14:32:00.000000+00"),
            (1_764_081_120.5, "2025-11-25 14:32:00.500000+00"),
            (1_764_081_120.25, "2025-11-25 14:32:00.250000+00"),
            (0.0, "1970-01-01 00:00:00.000000+00"),
            (1_790_000_000.0, "2026-09-21 14:13:20.000000+00"),
            (1_766_707_199.0, "2025-12-25 23:59:59.000000+00")
        ])
        func pgTimestampIsUTCWithSixFractionalDigits(seconds: Double, expected: String) {
            #expect(RecoveryPlanner.pgTimestamp(Date(timeIntervalSince1970: seconds)) == expected)
        }

        @Test func pgTimestampKeepsMicroseconds() {
            // recovery_target_time is compared with commit timestamps in microseconds; 2⁻⁶ s = 0.015625 s is exact in binary.
            do {
                #expect(
                    RecoveryPlanner.pgTimestamp(Date(timeIntervalSince1970: 1_764_081_120.015625))
                        == "2025-11-25 14:32:00.015625+00")
                #expect(
                    RecoveryPlanner.pgTimestamp(Date(timeIntervalSince1970: 1_764_081_120.984375))
                        == "2025-11-25 14:32:00.984375+00")
            }
        }
    }
}

// MARK: - Production's history (issue: a promoted copy's timeline must never become "the present")

extension RecoveryPlannerTests {
    @Suite struct ProductionHistory {
        /// Production on timeline 1 up to segment 30, backed up at segment 2; a side copy restored at minute 10
        /// promoted to timeline 2 and archived two segments into the same repository.
        fileprivate static var sideCopy: Scenario {
            var s = Scenario()
            s.archive(1...30)
            s.backup("B1", from: at(2, 0x28), to: at(3, 0x100))
            s.history(of: 2, [(parent: 1, at: at(10, 0x100))], began: minute(12))
            s.archive(10...11, timeline: 2, storedAt: { minute(Double($0) + 3) })
            return s
        }

        @Test func aCopyNobodyVouchedForMakesRestoresRefuseInsteadOfGuessing() throws {
            for target in [RecoveryTarget.latest, .immediate, .time(minute(20)), .lsn(at(20))] {
                let e = #expect(throws: CairnError.self) { try plan(Self.sideCopy, target) }
                #expect(e?.code == .repoAmbiguousHistory, "\(target)")
                #expect(e?.message.contains("timeline 2") == true)
                #expect(e?.hint?.contains("--target-timeline 1|2") == true)
            }
            // Told which history to follow, it plans.
            #expect(try plan(Self.sideCopy, .latest, timeline: 1).lastAvailableSegment == seg(1, 30))
        }

        @Test func aCopysTimelineIsNeverThePresent() throws {
            var s = Self.sideCopy
            s.decide(2, .copy)
            let p = try plan(s, .latest)
            #expect(p.timeline == 1)
            #expect(p.lastAvailableSegment == seg(1, 30))
            #expect(settings(p).last == "recovery_target_timeline=1")
            #expect(RecoveryPlanner.window(s.catalog).first?.toLSN == at(31))
        }

        /// Production on timeline 1 until minute 25; at minute 26 it was restored in place to minute 15, so
        /// timeline 2 forks at minute 15's LSN and begins at minute 26.5.
        fileprivate static var restoredInPlace: Scenario {
            var s = Scenario()
            s.archive(1...24)
            s.backup("B1", from: at(2, 0x28), to: at(3, 0x100))
            s.history(of: 2, [(parent: 1, at: at(15, 0x100))], began: minute(26.5))
            s.archive(15...30, timeline: 2, storedAt: { minute(Double($0) + 13) })
            s.decide(2, .production)
            return s
        }

        @Test func aTimeBetweenTheForkAndTheNewTimelinesStartIsRecoveredOnTheHistoryThatWasLive() throws {
            // At minute 20 production was still on timeline 1: along timeline 2 recovery would stop at minute 15.
            let p = try plan(Self.restoredInPlace, .time(minute(20)))
            #expect(p.timeline == 1)
            #expect(settings(p).contains("recovery_target_timeline=1"))
            #expect(try plan(Self.restoredInPlace, .time(minute(28))).timeline == 2)
            #expect(try plan(Self.restoredInPlace, .latest).timeline == 2)
            // Asked for timeline 2 explicitly, the same time is refused rather than stopping at the fork.
            let e = #expect(throws: CairnError.self) { try plan(Self.restoredInPlace, .time(minute(20)), timeline: 2) }
            #expect(e?.code == .restoreTarget)
            #expect(e?.message.contains("before timeline 2 began") == true)
            #expect(e?.hint?.contains("--target-timeline 1") == true)
        }

        @Test func aFailoversOldTimelineEndsAtTheForkSoTheGapIsTheForkState() throws {
            // The old primary's WAL ends at the fork: a time before the new timeline began is the fork's state.
            var s = Scenario()
            s.archive(1...19)
            s.backup("B1", from: at(2, 0x28), to: at(3, 0x100))
            s.history(of: 2, [(parent: 1, at: at(20, 0x80_0000))], began: minute(22))
            s.archive(20...26, timeline: 2)
            s.decide(2, .production)
            #expect(try plan(s, .time(minute(21))).timeline == 2)
            #expect(try plan(s, .time(minute(21)), timeline: 2).timeline == 2)
        }
    }
}

/// Which backup an incremental builds on (Sources/CairnCore/Incremental/ParentChoice.swift), on the planner's scenarios.
@Suite struct ParentChoiceTests {
    @Test func aParentIsTheNewestUsableBackup() throws {
        var s = Scenario.oneTimeline
        let cluster = ClusterInfo(
            systemIdentifier: "7300000000000000001", versionNum: 150_018, walSegmentSize: segmentSize,
            dataDirectory: nil)
        s.backups[1].pgManifest = .init(
            key: "k", digest: ObjectDigest(size: 1, sha256: "", storedSize: 1, storedSHA256: ""))
        s.backups[0].pgManifest = s.backups[1].pgManifest
        #expect(
            try ParentChoice.choose(kind: .incr, catalog: s.catalog, cluster: cluster, timeline: 1).get().id == "B2")
        s.backup("I3", from: at(12, 0x28), to: at(13, 0x100), kind: .incr)
        s.backups[2].parent = "B2"
        s.backups[2].pgManifest = s.backups[1].pgManifest
        #expect(
            try ParentChoice.choose(kind: .incr, catalog: s.catalog, cluster: cluster, timeline: 1).get().id == "I3")
        #expect(
            try ParentChoice.choose(kind: .diff, catalog: s.catalog, cluster: cluster, timeline: 1).get().id == "B2")
        // A promotion since: the next backup is a full one.
        #expect((try? ParentChoice.choose(kind: .incr, catalog: s.catalog, cluster: cluster, timeline: 2).get()) == nil)
        // A chain with a missing link is not built on.
        s.backups[2].parent = "GONE"
        #expect((try? ParentChoice.choose(kind: .incr, catalog: s.catalog, cluster: cluster, timeline: 1).get()) == nil)
        // Another cluster's repository content does not count.
        let other = ClusterInfo(
            systemIdentifier: "1", versionNum: 150_018, walSegmentSize: segmentSize, dataDirectory: nil)
        #expect((try? ParentChoice.choose(kind: .incr, catalog: s.catalog, cluster: other, timeline: 1).get()) == nil)
    }
}
