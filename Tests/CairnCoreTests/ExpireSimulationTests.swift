import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

/// 45 simulated days with an injected clock: a full backup every night at 01:00, one WAL segment an hour,
/// `cairn expire` every night at 02:00 under a 30-day window. The repository must end with exactly what the
/// policy says, and the plan must explain every line.
@Suite struct ExpireSimulationTests {
    static let seg: Int64 = 16 << 20
    static let day0 = Date(timeIntervalSince1970: 1_790_208_000)  // a midnight, UTC

    static func hour(_ h: Int) -> Date { day0.addingTimeInterval(Double(h) * 3600) }

    /// Writes a WAL segment for hour `h` (stored at the end of that hour).
    static func archive(_ h: Int, repo: MemoryRepository) throws {
        let name = WALSegment(timeline: 1, number: UInt64(h), segmentSize: seg).name
        try Pipeline().store(
            repo, key: Layout.walKey(.segment(name)), bytes: Array("segment \(h)".utf8), options: .createOnly)
    }

    /// Commits a (synthetic) full backup taken during hour `h`.
    static func backup(_ h: Int, repo: MemoryRepository, clock: ManualClock) throws -> String {
        let id = Layout.backupId(at: clock.now(), type: "F")
        let bundle = try Pipeline().store(
            repo, key: Layout.bundleKey(id, archive: "base", index: 1), bytes: Array("data \(h)".utf8),
            options: .createOnly)
        let start = LSN(UInt64(h) * UInt64(seg) + 0x28), stop = LSN(UInt64(h) * UInt64(seg) + 0x800)
        let m = BackupManifest(
            format: 1, id: id, kind: .full, systemIdentifier: "42", pgVersionNum: 150018, walSegmentSize: seg,
            start: .init(
                lsn: start, timeline: 1, time: clock.now(),
                wal: WALSegment(timeline: 1, lsn: start, segmentSize: seg).name),
            stop: .init(
                lsn: stop, timeline: 1, time: clock.now().addingTimeInterval(30),
                wal: WALSegment(timeline: 1, lsn: stop, segmentSize: seg).name),
            archives: [
                .init(
                    name: "base", tablespaceOid: nil, location: nil,
                    objects: [.init(key: Layout.bundleKey(id, archive: "base", index: 1), digest: bundle)])
            ],
            size: bundle.size, storedSize: bundle.storedSize, durationSeconds: 30, cairnVersion: "t", host: "db")
        try repo.put(Layout.manifestKey(id), try SealedDocument.seal(m), options: .createOnly)
        return id
    }

    @Test func fortyFiveDaysEndWithExactlyWhatThePolicySays() throws {
        let clock = ManualClock(Self.day0)
        let repo = MemoryRepository(clock: clock)
        let info = RepositoryInfo(
            cluster: ClusterInfo(
                systemIdentifier: "42", versionNum: 150018, walSegmentSize: Self.seg, dataDirectory: nil),
            created: Self.day0, cairnVersion: "t")
        try repo.put(RepositoryInfo.key, try SealedDocument.seal(info))
        let policy = RetentionPolicy(recoveryWindow: 30 * 86400, minFullBackups: 2)
        var ids: [Int: String] = [:]
        var lastPlan: ExpirePlan?
        for h in 0..<(45 * 24) {
            clock.set(Self.hour(h).addingTimeInterval(60))
            if h % 24 == 1 { ids[h / 24] = try Self.backup(h, repo: repo, clock: clock) }
            if h % 24 == 2 {
                let catalog = try Catalog.load(from: repo)
                let plan = ExpirePlanner.plan(catalog, policy: policy, now: clock.now())
                _ = try ExpireOperation.run(repo: repo, catalog: catalog, plan: plan, policy: policy)
                lastPlan = plan
            }
            clock.set(Self.hour(h + 1))
            try Self.archive(h, repo: repo)
        }
        // The last expire ran on day 44 at 02:01: the window starts on day 14 at 02:01, so the anchor is day 14's
        // backup (consistent at 01:01:30) and days 14…44 remain: 31 backups.
        let plan = try #require(lastPlan)
        #expect(plan.anchor == ids[14])
        let catalog = try Catalog.load(from: repo)
        #expect(catalog.backups.map(\.id) == (14...44).map { ids[$0]! })
        // WAL from the anchor's start (day 14, hour 1: segment 337) to the newest.
        let segments = (catalog.wal.segments[1] ?? [:]).keys.sorted()
        #expect(segments.first == 14 * 24 + 1)
        #expect(segments.last == UInt64(45 * 24 - 1))
        #expect(segments.count == 45 * 24 - (14 * 24 + 1))
        // Nothing but what the catalog references is left.
        let objects = try repo.list(prefix: "").map(\.key)
        #expect(objects.count == 1 + 31 * 2 + segments.count)  // cairn.json, 31 × (manifest + bundle), the WAL

        // The explanation, line by line, of the last run.
        let lines = plan.decisions.map { "\($0.action.rawValue) \($0.kind) \($0.subject): \($0.reason)" }
        #expect(
            lines.contains("delete backup \(ids[13]!): older than the anchor \(ids[14]!); not needed for the window"))
        #expect(
            lines.contains {
                $0.hasPrefix("keep backup \(ids[14]!): anchor: the newest backup consistent by the window start")
            })
        #expect(
            lines.contains {
                $0.hasPrefix("keep backup \(ids[44]!): inside the recovery window")
                    && $0.contains("one of the 2 newest full backups")
            })
        // Day 13's run had kept WAL from day 13, hour 1 (segment 313); now 313…336 goes and 337…1057 stays.
        let name = { (n: UInt64) in WALSegment(timeline: 1, number: n, segmentSize: Self.seg).name }
        #expect(lines.contains("delete wal \(name(313))…\(name(336)): before the start of the anchor \(ids[14]!)"))
        #expect(
            lines.contains("keep wal \(name(337))…\(name(1057)): on production's history from the anchor \(ids[14]!)"))
        #expect(plan.decisions.filter { $0.action == .delete }.count == 2)
    }
}
