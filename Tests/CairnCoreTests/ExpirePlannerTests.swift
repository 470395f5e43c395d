import CairnBase
import CairnStorage
import Foundation
import Testing

@testable import CairnCore
@testable import CairnPostgres

/// The retention planner's guarantee, checked over many generated catalogs, plus hand-written edge cases.
@Suite struct ExpirePlannerTests {
    static let seg: Int64 = 16 << 20
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)
    static func minute(_ m: Double) -> Date { t0.addingTimeInterval(m * 60) }
    static func at(_ n: UInt64, _ off: UInt64 = 0) -> LSN { LSN(n * UInt64(seg) + off) }

    /// A catalog where segment n is written during minute n and stored at minute n + 1.
    struct Model {
        var backups: [BackupManifest] = []
        var wal = WALArchive(segmentSize: seg)
        var pins: [String: Pin] = [:]

        mutating func archive(_ n: UInt64, timeline: UInt32 = 1) {
            let name = WALSegment(timeline: timeline, number: n, segmentSize: seg).name
            wal.segments[timeline, default: [:]][n] = .init(
                file: .segment(name), key: Layout.walKey(.segment(name)),
                storedSize: 1000, stored: minute(Double(n + 1)))
        }

        mutating func backup(_ id: String, segment n: UInt64, timeline: UInt32 = 1, kind: BackupManifest.Kind = .full) {
            let start = at(n, 0x28), stop = at(n, 0x800)
            backups.append(
                BackupManifest(
                    format: 1, id: id, kind: kind, systemIdentifier: "1", pgVersionNum: 150018, walSegmentSize: seg,
                    start: .init(
                        lsn: start, timeline: timeline, time: minute(Double(n) + 0.1),
                        wal: WALSegment(timeline: timeline, lsn: start, segmentSize: seg).name),
                    stop: .init(
                        lsn: stop, timeline: timeline, time: minute(Double(n) + 0.2),
                        wal: WALSegment(timeline: timeline, lsn: stop, segmentSize: seg).name),
                    archives: [], size: 1, storedSize: 1, durationSeconds: 1, cairnVersion: "t", host: "h"))
        }

        var catalog: Catalog {
            let info = RepositoryInfo(
                cluster: ClusterInfo(
                    systemIdentifier: "1", versionNum: 150018, walSegmentSize: seg, dataDirectory: nil),
                created: t0, cairnVersion: "t")
            let objects = Dictionary(
                uniqueKeysWithValues: backups.map { b in
                    (
                        b.id,
                        [
                            ObjectInfoStub.make(Layout.manifestKey(b.id)),
                            ObjectInfoStub.make("backups/\(b.id)/base/000001.tar.zst")
                        ]
                    )
                })
            return Catalog(info: info, backups: backups, wal: wal, pins: pins, backupObjects: objects)
        }
    }

    /// The catalog after the plan's deletions.
    static func apply(_ plan: ExpirePlan, to c: Catalog) -> Catalog {
        let gone = Set(plan.deletions)
        var wal = c.wal
        for (t, segs) in wal.segments { wal.segments[t] = segs.filter { !gone.contains($0.value.key) } }
        return Catalog(
            info: c.info, backups: c.backups.filter { !gone.contains(Layout.manifestKey($0.id)) }, wal: wal,
            pins: c.pins, backupObjects: c.backupObjects)
    }

    /// Can the catalog restore instant `t` on production's timeline?
    static func reachable(_ t: Date, _ c: Catalog) -> Bool {
        reachable(t, restorableSpans(c))
    }

    /// The instants each restorable backup reaches: from its stop to the end of the WAL that follows it.
    static func restorableSpans(_ c: Catalog) -> [ClosedRange<Date>] {
        let path = c.lineage.productionPath
        return c.backups.compactMap { b in
            // A full backup, or an incremental or differential whose chain is all there.
            guard b.kind.isPhysical, (try? c.chain(b.id)) != nil else { return nil }
            let r = RecoveryPlanner.reach(b, path: path, wal: c.wal)
            guard r.consistent, let end = r.endTime, end >= b.stop.time else { return nil }
            return b.stop.time...end
        }
    }

    static func reachable(_ t: Date, _ spans: [ClosedRange<Date>]) -> Bool {
        spans.contains { $0.contains(t) }
    }

    /// Is backup `b`'s own consistency WAL (start…stop on its timeline) present?
    static func consistentAlone(_ b: BackupManifest, _ c: Catalog) -> Bool {
        (b.startSegment.number...b.stopSegment.number).allSatisfy { c.wal.segments[b.start.timeline]?[$0] != nil }
    }

    /// A reproducible random generator (xorshift).
    struct RNG: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
    }

    static func randomModel(_ rng: inout RNG) -> (Model, now: Date, window: Double) {
        var m = Model()
        let last = UInt64.random(in: 40...240, using: &rng)
        let branch: UInt64? = Bool.random(using: &rng) ? UInt64.random(in: 10...(last - 10), using: &rng) : nil
        for n in 0...last {
            if let b = branch, n > b {
                m.archive(n, timeline: 2)
                if n < b + 5 { m.archive(n, timeline: 1) }  // the abandoned branch went on a little
            } else if let b = branch, n == b {
                m.archive(n, timeline: 1)
                m.archive(n, timeline: 2)
            } else {
                m.archive(n)
            }
        }
        if let b = branch { m.wal.histories[2] = [TimelineSwitch(parent: 1, switchPoint: at(b, 0x4000))] }
        // Gaps.
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            let n = UInt64.random(in: 0...last, using: &rng)
            for t in [UInt32(1), 2] { m.wal.segments[t]?[n] = nil }
        }
        // Backups (some on the abandoned branch), logical ones, pins.
        for i in 0..<Int.random(in: 1...9, using: &rng) {
            let n = UInt64.random(in: 0...(last - 1), using: &rng)
            let tli: UInt32 = branch.map { n > $0 ? 2 : (n >= $0 - 2 && Bool.random(using: &rng) ? 1 : 1) } ?? 1
            m.backup(String(format: "B%02d", i), segment: n, timeline: tli)
        }
        // Chains: some backups become incrementals of the one before them on their timeline, or differentials
        // of the full before them (a chain may cross into the abandoned branch's backups, as after a promotion).
        m.backups.sort { $0.start.time < $1.start.time }
        for i in m.backups.indices.dropFirst() where Int.random(in: 0..<3, using: &rng) > 0 {
            let earlier = m.backups[..<i].filter { $0.start.timeline == m.backups[i].start.timeline }
            if Bool.random(using: &rng), let p = earlier.last {
                m.backups[i].kind = .incr
                m.backups[i].parent = p.id
            } else if let p = earlier.last(where: { $0.kind == .full }) {
                m.backups[i].kind = .diff
                m.backups[i].parent = p.id
            }
        }
        if Bool.random(using: &rng) {
            m.backup("L01", segment: UInt64.random(in: 0...last, using: &rng), kind: .logical)
        }
        for b in m.backups where Int.random(in: 0..<5, using: &rng) == 0 {
            m.pins[b.id] = Pin(reason: "legal hold", pinnedAt: t0, by: "test")
        }
        let now = minute(Double(last) + 2)
        return (m, now, Double(Int.random(in: 5...Int(last), using: &rng)) * 60)
    }

    @Test func theWindowStaysRestorableOverManyGeneratedCatalogs() {
        var rng = RNG(state: 0x5DEECE66D)
        var checked = 0
        for _ in 0..<400 {
            let (model, now, window) = Self.randomModel(&rng)
            let before = model.catalog
            let policy = RetentionPolicy(
                recoveryWindow: window, minFullBackups: Int.random(in: 1...3, using: &rng), logicalRetention: 3600)
            let plan = ExpirePlanner.plan(before, policy: policy, now: now)
            let after = Self.apply(plan, to: before)
            // Every instant of the window that was restorable still is.
            let (spansBefore, spansAfter) = (Self.restorableSpans(before), Self.restorableSpans(after))
            var t = plan.windowStart
            while t <= now {
                if Self.reachable(t, spansBefore) {
                    #expect(Self.reachable(t, spansAfter), "instant \(t) lost; plan anchor \(plan.anchor ?? "-")")
                    checked += 1
                }
                t = t.addingTimeInterval(17)
            }
            // Pins survive with the WAL they need; the newest full backups survive.
            for (id, _) in model.pins {
                let b = before.backup(id)!
                #expect(after.backup(id) != nil, "pinned \(id) expired")
                if b.kind == .full && Self.consistentAlone(b, before) {
                    #expect(Self.consistentAlone(b, after), "pinned \(id) lost its WAL")
                }
            }
            let fulls = before.backups.filter { $0.kind == .full }.sorted { $0.stop.time < $1.stop.time }
            for b in fulls.suffix(policy.minFullBackups) { #expect(after.backup(b.id) != nil) }
            #expect(after.backups.contains { $0.kind == .full })
            // A chain that was whole stays whole: nothing a kept backup builds on is expired.
            for b in after.backups where (try? before.chain(b.id)) != nil {
                #expect((try? after.chain(b.id)) != nil, "backup \(b.id) lost a link of its chain")
            }
            // History is never deleted, and every delete names its reason.
            #expect(!plan.decisions.contains { $0.kind == "history" && $0.action == .delete })
            #expect(plan.decisions.allSatisfy { !$0.reason.isEmpty })
        }
        #expect(checked > 1000)
    }

    @Test func theAnchorIsTheNewestBackupConsistentByTheWindowStart() {
        var m = Model()
        for n in UInt64(0)...100 { m.archive(n) }
        for (i, n) in [5, 30, 55, 80].enumerated() { m.backup("B\(i)", segment: UInt64(n)) }
        let plan = ExpirePlanner.plan(
            m.catalog, policy: RetentionPolicy(recoveryWindow: 50 * 60, minFullBackups: 1), now: Self.minute(102))
        // Window start: minute 52 → anchor B1 (segment 30); B0 goes with segments 0…29.
        #expect(plan.anchor == "B1")
        #expect(plan.expiredBackups == ["B0"])
        let walDeletes = plan.decisions.filter { $0.kind == "wal" && $0.action == .delete }
        #expect(walDeletes.map(\.subject) == ["000000010000000000000000…00000001000000000000001D"])
        #expect(walDeletes.first?.reason == "before the start of the anchor B1")
        let b0 = plan.decisions.first { $0.subject == "B0" }!
        #expect(b0.keys.first == Layout.manifestKey("B0"), "the manifest is deleted first")
    }

    @Test func theLastFullBackupIsNeverExpiredAndWalWithoutBackupsIsKept() {
        var m = Model()
        for n in UInt64(0)...20 { m.archive(n) }
        #expect(
            ExpirePlanner.plan(m.catalog, policy: RetentionPolicy(recoveryWindow: 60), now: Self.minute(500)).deletions
                .isEmpty)
        m.backup("OLD", segment: 3)
        let plan = ExpirePlanner.plan(m.catalog, policy: RetentionPolicy(recoveryWindow: 60), now: Self.minute(500))
        #expect(plan.expiredBackups.isEmpty)
        #expect(plan.anchor == "OLD")
    }

    @Test func uncommittedBackupsAreGarbageOnlyWhenOld() {
        var m = Model()
        for n in UInt64(0)...5 { m.archive(n) }
        m.backup("B", segment: 2)
        var c = m.catalog
        c.uncommitted = ["OLDRUN", "RUNNING"]
        c.backupObjects["OLDRUN"] = [ObjectInfoStub.make("backups/OLDRUN/base/000001.tar.zst", at: Self.minute(0))]
        c.backupObjects["RUNNING"] = [ObjectInfoStub.make("backups/RUNNING/base/000001.tar.zst", at: Self.minute(7))]
        let plan = ExpirePlanner.plan(c, policy: RetentionPolicy(orphanSafetyAge: 120), now: Self.minute(8))
        #expect(plan.decisions.first { $0.subject == "OLDRUN" }?.action == .delete)
        #expect(plan.decisions.first { $0.subject == "RUNNING" }?.action == .keep)
    }
}

// MARK: - Production's history and running jobs

extension ExpirePlannerTests {
    /// Production on timeline 1 (segments 0…60, backups at 5 and 30); a side copy promoted from segment 40 to
    /// timeline 2 and archived segments 40…45 into the same repository.
    static func sideCopy() -> Model {
        var m = Model()
        for n in UInt64(0)...60 { m.archive(n) }
        m.backup("B0", segment: 5)
        m.backup("B1", segment: 30)
        m.wal.histories[2] = [TimelineSwitch(parent: 1, switchPoint: at(40, 0x100))]
        for n in UInt64(40)...45 { m.archive(n, timeline: 2) }
        return m
    }

    @Test func aCopysTimelineNeverMakesExpireDeleteProductionsWAL() {
        // Whether or not the copy is known for what it is, production's timeline 1 past the fork stays.
        for decided in [false, true] {
            var c = Self.sideCopy().catalog
            if decided {
                c.timelineRecords[2] = TimelineRecord(
                    timeline: 2, verdict: .copy, decidedBy: "test", reason: "", at: Self.t0)
            }
            let plan = ExpirePlanner.plan(
                c, policy: RetentionPolicy(recoveryWindow: 20 * 60, minFullBackups: 1), now: Self.minute(62))
            let deleted = Set(plan.deletions)
            for n in UInt64(30)...60 {
                let key = c.wal.segments[1]![n]!.key
                #expect(!deleted.contains(key), "production's segment \(n) deleted (copy decided: \(decided))")
            }
            #expect(plan.anchor == "B1")
            #expect(Self.reachable(Self.minute(59), Self.apply(plan, to: c)))
        }
    }

    static func lease(
        _ kind: Lease.Kind, backup: String? = nil, timeline: UInt32? = nil, first: UInt64? = nil,
        created: Date = minute(50), expires: Date = minute(200)
    ) -> Lease {
        Lease(
            id: "\(kind.rawValue)-test", kind: kind, host: "h", pid: 1, created: created, expires: expires,
            backup: backup,
            timeline: timeline,
            firstSegment: first.map { WALSegment(timeline: timeline ?? 1, number: $0, segmentSize: seg).name })
    }

    @Test func aRestoresLeaseKeepsItsBackupAndTheWALItReplays() {
        var m = Model()
        for n in UInt64(0)...100 { m.archive(n) }
        for (i, n) in [5, 30, 55, 80].enumerated() { m.backup("B\(i)", segment: UInt64(n)) }
        var c = m.catalog
        let policy = RetentionPolicy(recoveryWindow: 20 * 60, minFullBackups: 1)
        #expect(ExpirePlanner.plan(c, policy: policy, now: Self.minute(102)).expiredBackups == ["B0", "B1", "B2"])
        c.leases = [Self.lease(.restore, backup: "B0", timeline: 1, first: 5)]
        let plan = ExpirePlanner.plan(c, policy: policy, now: Self.minute(102))
        #expect(plan.expiredBackups == ["B1", "B2"])
        #expect(plan.decisions.first { $0.subject == "B0" }?.reason.contains("being restored") == true)
        let deleted = Set(plan.deletions)
        #expect((UInt64(5)...100).allSatisfy { !deleted.contains(c.wal.segments[1]![$0]!.key) })
        #expect(deleted.contains(c.wal.segments[1]![4]!.key))
        // An expired lease protects nothing.
        c.leases = [Self.lease(.restore, backup: "B0", timeline: 1, first: 5, expires: Self.minute(101))]
        #expect(ExpirePlanner.plan(c, policy: policy, now: Self.minute(102)).expiredBackups == ["B0", "B1", "B2"])
    }

    @Test func aJobThatHasNotChosenYetOrADrillHoldsEverything() {
        var m = Model()
        for n in UInt64(0)...100 { m.archive(n) }
        for (i, n) in [5, 30, 55, 80].enumerated() { m.backup("B\(i)", segment: UInt64(n)) }
        for kind in [Lease.Kind.drill, .restore] {
            var c = m.catalog
            c.leases = [Self.lease(kind)]
            let plan = ExpirePlanner.plan(
                c, policy: RetentionPolicy(recoveryWindow: 20 * 60, minFullBackups: 1), now: Self.minute(102))
            #expect(plan.deletions.isEmpty, "\(kind)")
        }
    }

    @Test func aRunningBackupsObjectsSurviveItsWaitForWAL() {
        var m = Model()
        for n in UInt64(0)...5 { m.archive(n) }
        m.backup("B", segment: 2)
        var c = m.catalog
        // Started at minute 7 (its id is its start time), waiting for WAL since: older than the safety age.
        let running = Layout.backupId(at: Self.minute(7), type: "F")
        c.uncommitted = ["20260101T000000F", running]
        c.backupObjects["20260101T000000F"] = [
            ObjectInfoStub.make("backups/20260101T000000F/base/000001.tar.zst", at: Self.minute(0))
        ]
        c.backupObjects[running] = [ObjectInfoStub.make("backups/\(running)/base/000001.tar.zst", at: Self.minute(7))]
        c.leases = [Self.lease(.backup, created: Self.minute(6.9))]
        let plan = ExpirePlanner.plan(c, policy: RetentionPolicy(orphanSafetyAge: 120), now: Self.minute(100))
        #expect(plan.decisions.first { $0.subject == running }?.action == .keep)
        #expect(plan.decisions.first { $0.subject == "20260101T000000F" }?.action == .delete)
    }
}

/// Object metadata for synthetic catalogs.
enum ObjectInfoStub {
    static func make(
        _ key: String, at date: Date = Date(timeIntervalSince1970: 1_790_000_000)
    ) -> CairnStorage.ObjectInfo {
        CairnStorage.ObjectInfo(key: key, size: 100, lastModified: date)
    }
}
