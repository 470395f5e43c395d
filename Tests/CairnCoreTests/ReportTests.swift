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
            wal.segments[1, default: [:]][UInt64(h)] = .init(file: .segment(name), key: Layout.walKey(.segment(name)), storedSize: 1,
                                                             stored: nov1.addingTimeInterval(Double(h - 24 + 1) * 3600))
        }
        let b = BackupManifest(format: 1, id: "20261031T010000F", kind: .full, systemIdentifier: "42", pgVersionNum: 150018, walSegmentSize: seg,
                               start: .init(lsn: LSN(UInt64(seg)), timeline: 1, time: day(-1), wal: "000000010000000000000001"),
                               stop: .init(lsn: LSN(UInt64(seg) + 100), timeline: 1, time: day(-1).addingTimeInterval(60), wal: "000000010000000000000001"),
                               archives: [], size: 100, storedSize: 50, durationSeconds: 60, cairnVersion: "t", host: "h")
        let info = RepositoryInfo(cluster: ClusterInfo(systemIdentifier: "42", versionNum: 150018, walSegmentSize: seg, dataDirectory: nil),
                                  created: day(-30), cairnVersion: "t")
        return Catalog(info: info, backups: [b], wal: wal)
    }

    static func drill(_ id: String, at d: Double, pass: Bool, rto: Double) -> DrillRecord {
        DrillRecord(id: id, backupId: "20261031T010000F", backupKind: "full", target: "LSN 0/1000100", reachedTime: nil,
                    verdict: pass ? .pass : .fail, failedCheck: pass ? nil : "pg_amcheck", checks: [],
                    rto: .init(restoreSeconds: rto / 2, replaySeconds: rto / 4, checksSeconds: rto / 4, totalSeconds: rto),
                    started: day(d), finished: day(d).addingTimeInterval(rto), host: "h", bytesRestored: 100)
    }

    @Test func aCleanMonthIsVerified() throws {
        let drills = [Self.drill("20261103T020000D", at: 2, pass: true, rto: 72), Self.drill("20261110T020000D", at: 9, pass: true, rto: 123)]
        let jobs = [JobRecord(job: "backup-full", started: Self.day(4), finished: Self.day(4), outcome: .ok, subject: "20261105T010000F", bytes: 60)]
        let m = try ReportBuilder.build(month: "2026-11", catalog: Self.catalog(), jobs: jobs, drills: drills, verifies: [],
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
        let early = try ReportBuilder.build(month: "2026-11", catalog: Self.catalog(), jobs: jobs, drills: drills, verifies: [],
                                            location: "s3://b/p", now: Self.day(20))
        #expect(early.verified, "\(early.conclusion)")
        #expect(early.conclusion.hasPrefix("VERIFIED 2026-11: 1 of 1 backups succeeded, 2 of 2 restore drills passed"))
    }

    @Test func failuresGapsAndMissingDrillsAreNamed() throws {
        let drills = [Self.drill("20261103T020000D", at: 2, pass: false, rto: 30)]
        let jobs = [JobRecord(job: "backup-full", started: Self.day(4), finished: Self.day(4), outcome: .failed,
                              error: CoreError(.repoTimeout, "the endpoint made no progress"))]
        let m = try ReportBuilder.build(month: "2026-11", catalog: Self.catalog(gapAt: 100), jobs: jobs, drills: drills, verifies: [],
                                        location: "/r", now: Self.day(10))
        #expect(m.conclusion.contains("1 of 1 drills failed"))
        #expect(m.conclusion.contains("1 of 1 backups failed"))
        #expect(m.conclusion.contains("the WAL archive has 1 gap(s)"))
        #expect(m.walGaps == [WALSegment(timeline: 1, number: 100, segmentSize: Self.seg).name])
        let none = try ReportBuilder.build(month: "2026-11", catalog: Self.catalog(), jobs: [], drills: [], verifies: [], location: "/r", now: Self.day(5))
        #expect(none.conclusion.contains("no restore drill ran"))
        #expect(throws: CoreError.self) { try ReportBuilder.build(month: "2026-13", catalog: Self.catalog(), jobs: [], drills: [], verifies: [], location: "/r", now: Self.day(5)) }
    }

    @Test func markdownHtmlAndJsonCarryTheSameFigures() throws {
        let drills = [Self.drill("20261103T020000D", at: 2, pass: true, rto: 72), Self.drill("20261110T020000D", at: 9, pass: false, rto: 45)]
        let m = try ReportBuilder.build(month: "2026-11", catalog: Self.catalog(), jobs: [], drills: drills, verifies: [],
                                        location: "/r", now: Self.day(15))
        let md = MarkdownReport.render(m), html = HTMLReport.render(m)
        for d in drills {
            let row = [d.id, d.verdict.rawValue.uppercased(), Units.formatDuration(d.rto.totalSeconds), Units.formatDuration(d.rto.replaySeconds)]
            for cell in row {
                #expect(md.contains(cell), "markdown lacks \(cell)")
                #expect(html.contains(cell), "html lacks \(cell)")
            }
        }
        #expect(md.contains(m.conclusion) && html.contains(HTMLReport.esc(m.conclusion)))
        #expect(html.contains("<svg") && !html.contains("http://") && !html.contains("https://"), "self-contained")
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        #expect(try d.decode(ReportModel.self, from: e.encode(m)) == m)
    }
}
