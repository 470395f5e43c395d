import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import Foundation

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the committed backups.",
        discussion: """
            With several repositories, each one's backups under a heading `repository NAME (location)`; --json then \
            prints {"repositories": [{"name", "location", "result": [...], "error"}]}. A repository that cannot be \
            read is reported and the others are listed; the command then fails.
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print as JSON.") var json = false

    func run() async throws {
        let ctx = try AppContext.load(global)
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in (try await Blocking.run { try Catalog.load(from: m.repo) }, m.repo.location) },
            encode: { catalog, _ in
                catalog.backups.map { BackupSummary($0, pin: catalog.pins[$0.id], catalog: catalog) }
            },
            text: { Self.printTable($0.0, location: $0.1) })
    }

    /// The backups as a table.
    static func printTable(_ catalog: Catalog, location: String) {
        if catalog.backups.isEmpty { return Output.line("no backups in \(location)") }
        Output.line(
            Table.render(
                header: [
                    "id", "type", "parent", "stopped (consistent at)", "LSN range", "tl", "size", "stored",
                    "chain stored",
                    "took", "pinned"
                ],
                rows: catalog.backups.map { b in
                    [
                        b.id, b.kind.rawValue, b.parent ?? "", Timestamp.format(b.stop.time),
                        "\(b.start.lsn)…\(b.stop.lsn)", String(b.stop.timeline),
                        Units.formatBytes(b.size), Units.formatBytes(b.storedSize),
                        b.parent == nil ? "" : catalog.chainStoredSize(b.id).map(Units.formatBytes) ?? "BROKEN",
                        Units.formatDuration(b.durationSeconds), catalog.pins[b.id].map { "yes: \($0.reason)" } ?? ""
                    ]
                }))
    }
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show the repository: backups, WAL coverage per timeline, gaps, and the recoverable window.",
        discussion: """
            With several repositories, each one's section under a heading `repository NAME (location)`; --json then \
            prints {"repositories": [{"name", "location", "result": {...}, "error"}]}. A repository that cannot be \
            read is reported and the others are shown; the command then fails.
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print as JSON.") var json = false

    struct Report: Encodable {
        var location: String
        var systemIdentifier: String
        var pgVersion: Int
        var backups: [BackupSummary]
        var uncommittedBackups: [String]
        var damagedManifests: [String]
        var timelines: [TimelineReport]
        /// Production's newest timeline: restores, the window and retention follow its history.
        var productionTimeline: UInt32
        /// Timelines that nothing places in production's history or marks as a copy's (restores refuse to guess).
        var ambiguousTimelines: [UInt32]
        var recoverableWindow: [RecoverableSpan]

        enum CodingKeys: String, CodingKey {
            case location, backups, timelines
            case productionTimeline = "production_timeline"
            case ambiguousTimelines = "ambiguous_timelines"
            case systemIdentifier = "system_identifier"
            case pgVersion = "pg_version_num"
            case uncommittedBackups = "uncommitted_backups"
            case damagedManifests = "damaged_manifests"
            case recoverableWindow = "recoverable_window"
        }
    }

    struct TimelineReport: Encodable {
        var timeline: UInt32
        /// production, copy or undecided (see `cairn timeline`).
        var status: Lineage.Status
        var parent: UInt32?
        var branchedAt: String?
        var firstSegment: String?
        var lastSegment: String?
        var segments: Int
        var storedBytes: Int64
        var gaps: [String]
        var newestArchived: Date?

        enum CodingKeys: String, CodingKey {
            case timeline, parent, segments, gaps
            case branchedAt = "branched_at"
            case firstSegment = "first_segment"
            case lastSegment = "last_segment"
            case storedBytes = "stored_bytes"
            case newestArchived = "newest_archived"
        }
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in
                let catalog = try await Blocking.run { try Catalog.load(from: m.repo) }
                return (Self.report(catalog, location: m.repo.location), catalog)
            }, encode: \.0, text: { Self.print($0.0, $0.1) })
    }

    /// The report of one repository.
    static func report(_ catalog: Catalog, location: String) -> Report {
        let lineage = catalog.lineage
        let timelines = catalog.wal.timelines.map { Self.timelineReport($0, wal: catalog.wal, lineage: lineage) }
        return Report(
            location: location, systemIdentifier: catalog.info.systemIdentifier, pgVersion: catalog.info.pgVersionNum,
            backups: catalog.backups.map { BackupSummary($0, pin: catalog.pins[$0.id], catalog: catalog) },
            uncommittedBackups: catalog.uncommitted,
            damagedManifests: catalog.damagedManifests, timelines: timelines,
            productionTimeline: lineage.production, ambiguousTimelines: lineage.ambiguous,
            recoverableWindow: RecoveryPlanner.merge(RecoveryPlanner.window(catalog)))
    }

    /// The report as text.
    static func print(_ report: Report, _ catalog: Catalog) {
        let lineage = catalog.lineage
        Self.printBackups(catalog, location: report.location)
        Self.printArchive(report.timelines)
        if !lineage.ambiguous.isEmpty { Output.line("AMBIGUOUS: \(lineage.ambiguityError().message)") }
        Output.line(
            "recoverable window on production's timeline \(lineage.production): \(RecoveryPlanner.describe(report.recoverableWindow))"
        )
    }

    /// One timeline of the archive: its segments, their runs and the gaps between them, where it branched.
    static func timelineReport(_ tli: UInt32, wal: WALArchive, lineage: Lineage) -> TimelineReport {
        let runs = wal.runs(timeline: tli)
        let segs = wal.segments[tli] ?? [:]
        func name(_ n: UInt64) -> String { WALSegment(timeline: tli, number: n, segmentSize: wal.segmentSize).name }
        let gaps = zip(runs, runs.dropFirst()).map { a, b in
            let (first, last) = (name(a.upperBound + 1), name(b.lowerBound - 1))
            return first == last ? first : "\(first)…\(last)"
        }
        let hist = wal.histories[tli]?.last
        return TimelineReport(
            timeline: tli, status: lineage.statuses[tli] ?? .undecided, parent: hist?.parent,
            branchedAt: hist?.switchPoint.description, firstSegment: runs.first.map { name($0.lowerBound) },
            lastSegment: runs.last.map { name($0.upperBound) }, segments: segs.count,
            storedBytes: segs.values.reduce(0) { $0 + $1.storedSize }, gaps: gaps,
            newestArchived: segs.values.compactMap(\.stored).max())
    }

    /// The repository, its backups (with their chains) and what it ignores.
    private static func printBackups(_ catalog: Catalog, location: String) {
        Output.line(
            "repository \(location): cluster \(catalog.info.systemIdentifier), PostgreSQL \(catalog.info.pgMajor)")
        Output.line(
            "backups: \(catalog.backups.count)"
                + (catalog.backups.last.map { ", newest \($0.id) (consistent at \(Timestamp.format($0.stop.time)))" }
                    ?? ""))
        for b in catalog.backups {
            let what =
                b.kind == .logical
                ? "databases \((b.databases ?? []).map(\.name).joined(separator: ", "))"
                : "\(b.start.wal)…\(b.stop.wal)"
            let chain =
                b.parent.map { p in
                    " (on \(p); chain \(catalog.chainStoredSize(b.id).map { Units.formatBytes($0) + " stored" } ?? "BROKEN: a backup it builds on is missing"))"
                } ?? ""
            Output.line("  \(b.id)  \(b.kind.rawValue)  \(what)  \(Units.formatBytes(b.storedSize)) stored\(chain)")
        }
        if !catalog.uncommitted.isEmpty {
            Output.line(
                "uncommitted (interrupted or in progress, ignored): \(catalog.uncommitted.joined(separator: ", "))")
        }
        if !catalog.damagedManifests.isEmpty {
            Output.line("DAMAGED manifests (run cairn verify): \(catalog.damagedManifests.joined(separator: ", "))")
        }
    }

    /// The WAL archive, timeline by timeline, with its gaps.
    private static func printArchive(_ timelines: [TimelineReport]) {
        Output.line("WAL archive:")
        if timelines.isEmpty { Output.line("  empty") }
        for t in timelines {
            var line =
                "  timeline \(t.timeline) (\(t.status == .copy ? "a copy's" : t.status.rawValue)): \(t.segments) segments \(t.firstSegment ?? "-")…\(t.lastSegment ?? "-"), \(Units.formatBytes(t.storedBytes))"
            if let p = t.parent, let at = t.branchedAt { line += ", branched from timeline \(p) at \(at)" }
            Output.line(line)
            for g in t.gaps { Output.line("    GAP: \(g) missing") }
        }
    }
}

/// Plain text tables.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
