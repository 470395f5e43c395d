import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

/// The monthly report from synthetic records: figures, conclusion, and the same facts in every format.
@Suite struct ReportTests {
    static let seg: Int64 = 16 << 20
    static let nov1 = Date(timeIntervalSince1970: 1_793_491_200)  // 2026-11-01T00:00:00Z

    static func day(_ d: Double) -> Date { nov1.addingTimeInterval(d * 86400) }

    static func catalog(gapAt gap: UInt64? = nil) -> Catalog {
        var wal = WALArchive(segmentSize: seg)
        // One segment an hour from Oct 31 to Nov 20.
        for h in 0..<(21 * 24) where UInt64(h) != gap {
            let name = WALSegment(timeline: 1, number: UInt64(h), segmentSize: seg).name
            wal.segments[1, default: [:]][UInt64(h)] = .init(
                file: .segment(name), key: Layout.walKey(.segment(name)), storedSize: 1,
                stored: nov1.addingTimeInterval(Double(h - 24 + 1) * 3600))
        }
        let b = BackupManifest(
            format: 1, id: "20261031T010000F", kind: .full, systemIdentifier: "42", pgVersionNum: 150018,
            walSegmentSize: seg,
            start: .init(lsn: LSN(UInt64(seg)), timeline: 1, time: day(-1), wal: "000000010000000000000001"),
            stop: .init(
                lsn: LSN(UInt64(seg) + 100), timeline: 1, time: day(-1).addingTimeInterval(60),
                wal: "000000010000000000000001"),
            archives: [], size: 100, storedSize: 50, durationSeconds: 60, cairnVersion: "t", host: "h")
        let info = RepositoryInfo(
            cluster: ClusterInfo(systemIdentifier: "42", versionNum: 150018, walSegmentSize: seg, dataDirectory: nil),
            created: day(-30), cairnVersion: "t")
        return Catalog(info: info, backups: [b], wal: wal)
    }

    static func drill(_ id: String, at d: Double, pass: Bool, rto: Double) -> DrillRecord {
        DrillRecord(
            id: id, backupId: "20261031T010000F", backupKind: "full", target: "LSN 0/1000100", reachedTime: nil,
            verdict: pass ? .pass : .fail, failedCheck: pass ? nil : "pg_amcheck", checks: [],
            rto: .init(restoreSeconds: rto / 2, replaySeconds: rto / 4, checksSeconds: rto / 4, totalSeconds: rto),
            started: day(d), finished: day(d).addingTimeInterval(rto), host: "h", bytesRestored: 100)
    }

    @Test func aCleanMonthIsVerified() throws {
        let drills = [
            Self.drill("20261103T020000D", at: 2, pass: true, rto: 72),
            Self.drill("20261110T020000D", at: 9, pass: true, rto: 123)
        ]
        let jobs = [
            JobRecord(
                job: "backup-full", started: Self.day(4), finished: Self.day(4), outcome: .ok,
                subject: "20261105T010000F", bytes: 60)
        ]
        let m = try ReportBuilder.build(
            month: "2026-11", catalog: Self.catalog(), jobs: jobs, drills: drills, verifies: [],
            location: "s3://b/p", now: Self.day(22).addingTimeInterval(3600))
        // The archive's newest segment was stored at Nov 21 00:00: Nov 1–20 are covered, Nov 21–22 are not,
        // Nov 23 onwards are not over yet.
        #expect(m.days.count == 30)
        #expect(m.days[0].coverage == 1 && m.days[19].coverage == 1)
        #expect(m.days[20].coverage == 0 && m.days[21].coverage == 0)
        #expect(m.days[22].coverage == nil && m.days[25].coverage == nil)
        #expect(!m.verified)
        #expect(m.conclusion.hasPrefix("NOT VERIFIED 2026-11"))
        #expect(m.conclusion.contains("2 of 2 restore drills passed, median RTO 2m03s, worst 2m03s"))
        #expect(m.conclusion.contains("2 day(s) were not fully recoverable"))
        #expect(m.backups.map(\.id) == ["20261105T010000F"])
        // Before the uncovered days, the month reads as verified.
        // (The drills were 11 days before: allowed by a policy asking for one every 14 days.)
        let early = try ReportBuilder.build(
            month: "2026-11", catalog: Self.catalog(), jobs: jobs, drills: drills, verifies: [],
            location: "s3://b/p", now: Self.day(20), requirements: .init(drillInterval: 14 * 86400))
        #expect(early.verified, "\(early.conclusion)")
        #expect(early.conclusion.hasPrefix("VERIFIED 2026-11: 1 of 1 backups succeeded, 2 of 2 restore drills passed"))
    }

    /// A repository created on Nov 15 at 11:00 (its first backup), with WAL archived every hour from then on.
    static func firstMonthCatalog(hours: Int) -> Catalog {
        let origin = day(14).addingTimeInterval(11 * 3600)
        var wal = WALArchive(segmentSize: seg)
        for h in 0..<hours {
            let name = WALSegment(timeline: 1, number: UInt64(h), segmentSize: seg).name
            wal.segments[1, default: [:]][UInt64(h)] = .init(
                file: .segment(name), key: Layout.walKey(.segment(name)), storedSize: 1,
                stored: origin.addingTimeInterval(Double(h) * 3600))
        }
        let b = BackupManifest(
            format: 1, id: "20261115T110000F", kind: .full, systemIdentifier: "42", pgVersionNum: 150018,
            walSegmentSize: seg,
            start: .init(
                lsn: LSN(UInt64(seg)), timeline: 1, time: origin.addingTimeInterval(-60),
                wal: "000000010000000000000001"),
            stop: .init(lsn: LSN(UInt64(seg) + 100), timeline: 1, time: origin, wal: "000000010000000000000001"),
            archives: [], size: 100, storedSize: 50, durationSeconds: 60, cairnVersion: "t", host: "h")
        let info = RepositoryInfo(
            cluster: ClusterInfo(systemIdentifier: "42", versionNum: 150018, walSegmentSize: seg, dataDirectory: nil),
            created: origin.addingTimeInterval(-120), cairnVersion: "t")
        return Catalog(info: info, backups: [b], wal: wal)
    }

    /// Issue #26: the first month said "VERIFIED … 0 of 0 completed days" and showed days before the repository as
    /// "not over yet". Days before the first backup are "before the repository"; VERIFIED needs a completed day.
    @Test func aFirstMonthIsVerifiedOnlyOnceADayIsProven() throws {
        let drill = Self.drill("20261115T150000D", at: 14 + 15 / 24.0, pass: true, rto: 60)
        let sameDay = try ReportBuilder.build(
            month: "2026-11", catalog: Self.firstMonthCatalog(hours: 8), jobs: [], drills: [drill],
            verifies: [], location: "/r", now: Self.day(14 + 20 / 24.0))
        #expect(!sameDay.verified)
        #expect(
            sameDay.conclusion.hasPrefix("NOT VERIFIED 2026-11: no day since the first backup"), "\(sameDay.conclusion)"
        )
        #expect(sameDay.days[0].state == .beforeRepository && sameDay.days[13].state == .beforeRepository)
        #expect(sameDay.days[14].state == .notOver && sameDay.days[29].state == .notOver)
        let md = MarkdownReport.render(sameDay), html = HTMLReport.render(sameDay)
        #expect(md.contains("| 2026-11-01 | before the repository (not counted) |"), "\(md)")
        #expect(md.contains("| 2026-11-15 | not over yet |"))
        #expect(
            html.contains("11-01<br><b>before the repository</b>") && !html.contains("–"),
            "the grid says what each day is")

        // Two days later: the first backup's day (from the backup on) and the next are proven.
        let twoDays = try ReportBuilder.build(
            month: "2026-11", catalog: Self.firstMonthCatalog(hours: 48), jobs: [], drills: [drill],
            verifies: [], location: "/r", now: Self.day(16 + 1 / 24.0))
        #expect(twoDays.days[14].state == .measured && twoDays.days[14].coverage == 1 && twoDays.days[15].coverage == 1)
        #expect(twoDays.verified, "\(twoDays.conclusion)")
        #expect(
            twoDays.conclusion.contains(
                "2 of 2 completed days were fully recoverable (14 day(s) before the first backup not counted)"))
    }

    @Test func verifiedNeedsTheDrillPolicysRecencyAndCoverage() throws {
        let drill = Self.drill("20261115T150000D", at: 14 + 15 / 24.0, pass: true, rto: 60)
        let catalog = Self.firstMonthCatalog(hours: 250)
        let stale = try ReportBuilder.build(
            month: "2026-11", catalog: catalog, jobs: [], drills: [drill], verifies: [], location: "/r",
            now: Self.day(24))
        #expect(!stale.verified)
        #expect(stale.conclusion.contains("went without a passing restore drill"), "\(stale.conclusion)")
        #expect(stale.conclusion.contains("the drill policy asks for one every 7d"), "\(stale.conclusion)")
        let relaxed = try ReportBuilder.build(
            month: "2026-11", catalog: catalog, jobs: [], drills: [drill], verifies: [], location: "/r",
            now: Self.day(24), requirements: .init(drillInterval: 14 * 86400))
        #expect(relaxed.verified, "\(relaxed.conclusion)")
        // WAL up to Nov 20 15:00 only: Nov 20 is 62.5 % covered; a 60 % requirement accepts it, the default does not.
        let short = Self.firstMonthCatalog(hours: 5 * 24 + 5)
        let strict = try ReportBuilder.build(
            month: "2026-11", catalog: short, jobs: [], drills: [drill], verifies: [], location: "/r",
            now: Self.day(20), requirements: .init(drillInterval: 14 * 86400))
        #expect(
            !strict.verified && strict.conclusion.contains("1 day(s) were not fully recoverable"),
            "\(strict.conclusion)")
        let lenient = try ReportBuilder.build(
            month: "2026-11", catalog: short, jobs: [], drills: [drill], verifies: [], location: "/r",
            now: Self.day(20), requirements: .init(dayCoverage: 0.6, drillInterval: 14 * 86400))
        #expect(lenient.verified, "\(lenient.conclusion)")
        #expect(lenient.conclusion.contains("completed days were at least 60% recoverable"))
    }

    @Test func failuresGapsAndMissingDrillsAreNamed() throws {
        let drills = [Self.drill("20261103T020000D", at: 2, pass: false, rto: 30)]
        let jobs = [
            JobRecord(
                job: "backup-full", started: Self.day(4), finished: Self.day(4), outcome: .failed,
                error: CairnError(.repoTimeout, "the endpoint made no progress"))
        ]
        let m = try ReportBuilder.build(
            month: "2026-11", catalog: Self.catalog(gapAt: 100), jobs: jobs, drills: drills, verifies: [],
            location: "/r", now: Self.day(10))
        #expect(m.conclusion.contains("1 of 1 drills failed"))
        #expect(m.conclusion.contains("1 of 1 backups failed"))
        #expect(m.conclusion.contains("the WAL archive has 1 gap(s)"))
        #expect(m.walGaps == [WALSegment(timeline: 1, number: 100, segmentSize: Self.seg).name])
        let none = try ReportBuilder.build(
            month: "2026-11", catalog: Self.catalog(), jobs: [], drills: [], verifies: [], location: "/r",
            now: Self.day(5))
        #expect(none.conclusion.contains("no restore drill ran"))
        #expect(throws: CairnError.self) {
            try ReportBuilder.build(
                month: "2026-13", catalog: Self.catalog(), jobs: [], drills: [], verifies: [], location: "/r",
                now: Self.day(5))
        }
    }

    @Test func markdownHtmlAndJsonCarryTheSameFigures() throws {
        let drills = [
            Self.drill("20261103T020000D", at: 2, pass: true, rto: 72),
            Self.drill("20261110T020000D", at: 9, pass: false, rto: 45)
        ]
        let m = try ReportBuilder.build(
            month: "2026-11", catalog: Self.catalog(), jobs: [], drills: drills, verifies: [],
            location: "/r", now: Self.day(15))
        let md = MarkdownReport.render(m), html = HTMLReport.render(m)
        for d in drills {
            let row = [
                d.id, d.verdict.rawValue.uppercased(), Units.formatDuration(d.rto.totalSeconds),
                Units.formatDuration(d.rto.replaySeconds)
            ]
            for cell in row {
                #expect(md.contains(cell), "markdown lacks \(cell)")
                #expect(html.contains(cell), "html lacks \(cell)")
            }
        }
        #expect(md.contains(m.conclusion) && html.contains(HTMLReport.esc(m.conclusion)))
        #expect(html.contains("<svg") && !html.contains("http://") && !html.contains("https://"), "self-contained")
        // The RTO chart's legend names each phase with its bars' colour.
        for (phase, color) in [("restore", "#4285f4"), ("WAL replay", "#fbbc04"), ("checks", "#34a853")] {
            #expect(
                html.contains("fill=\"\(color)\"/><text x=") && html.contains(">\(phase)</text></g>"),
                "legend for \(phase)")
        }
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        #expect(try d.decode(ReportModel.self, from: e.encode(m)) == m)
    }
}
