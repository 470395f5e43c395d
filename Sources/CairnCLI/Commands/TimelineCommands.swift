import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation

/// `cairn timeline`: which timeline history is production's, and the operator's word on it.
struct TimelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline",
        abstract: "Show which timeline history is production's; adopt a timeline or mark it as a copy's.",
        discussion: """
            A promoted copy of the cluster (a side restore with archiving on) archives a new timeline into the \
            repository. Cairn records which timelines are production's (init, backup, and wal-push when it can prove \
            which cluster archived a history file) and which are copies'. A timeline above production's that nothing \
            decided makes restores refuse to guess; `adopt` and `mark-copy` decide it. See runbooks/side-restore.md.
            """,
        subcommands: [TimelineListCommand.self, TimelineAdoptCommand.self, TimelineMarkCopyCommand.self],
        defaultSubcommand: TimelineListCommand.self)
}

struct TimelineListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the timelines and what each is.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print as JSON.") var json = false

    struct Row: Encodable {
        var timeline: UInt32
        var status: Lineage.Status
        var parent: UInt32?
        var forkedAt: String?
        var began: Date?
        var record: TimelineRecord?

        enum CodingKeys: String, CodingKey {
            case timeline, status, parent, began, record
            case forkedAt = "forked_at"
        }
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        let catalog = try await Blocking.run { try Catalog.load(from: try ctx.makeRepository()) }
        let lineage = catalog.lineage
        let rows = lineage.statuses.keys.sorted().map { t in
            Row(
                timeline: t, status: lineage.statuses[t]!, parent: lineage.histories[t]?.last?.parent,
                forkedAt: lineage.histories[t]?.last?.switchPoint.description, began: lineage.started[t],
                record: lineage.records[t])
        }
        if json { return try Output.json(rows) }
        Output.line(
            "production's history: timeline \(lineage.productionPath.timelines.map(String.init).joined(separator: " → "))"
        )
        Output.line(
            Table.render(
                header: ["tl", "status", "forked from", "began", "decided by"],
                rows: rows.map { r in
                    [
                        String(r.timeline), r.status.rawValue, r.parent.map { "\($0) at \(r.forkedAt ?? "?")" } ?? "",
                        r.began.map(Timestamp.format) ?? "",
                        r.record.map { "\($0.decidedBy): \($0.reason)" }
                            ?? (r.status == .production ? "a backup on it, or its descendant's" : "")
                    ]
                }))
        if !lineage.ambiguous.isEmpty { Output.line("AMBIGUOUS: \(lineage.ambiguityError().message)") }
    }
}

/// Shared by adopt and mark-copy.
struct TimelineDecision: ParsableArguments {
    @Argument(help: "The timeline.") var timeline: UInt32
    @Option(name: .long, help: "Why (kept in the record).") var reason: String

    func record(_ verdict: TimelineRecord.Verdict, global: GlobalOptions, verb: String) async throws {
        let ctx = try AppContext.load(global)
        let (timeline, reason) = (self.timeline, self.reason)
        // The decision is recorded in every repository: each one's restores follow the same history.
        try await EachRepository(set: try ctx.makeRepositories(), json: false).run(
            { m in
                try await Blocking.run { try Self.decide(timeline, verdict, reason: reason, verb: verb, repo: m.repo) }
            },
            encode: { $0.production },
            text: { lineage in
                Output.line(
                    "timeline \(timeline) recorded as \(verdict == .production ? "production's" : "a copy's"); production's history is now timeline \(lineage.productionPath.timelines.map(String.init).joined(separator: " → "))"
                )
            })
    }

    /// Records the decision in one repository; returns its lineage afterwards.
    static func decide(
        _ timeline: UInt32, _ verdict: TimelineRecord.Verdict, reason: String, verb: String, repo: any Repository
    ) throws -> Lineage {
        let catalog = try Catalog.load(from: repo)
        guard catalog.lineage.statuses[timeline] != nil else {
            throw CairnError(
                .restoreTarget, "the repository knows no timeline \(timeline)", hint: "`cairn timeline` lists them")
        }
        let lineage = catalog.lineage
        if verdict == .copy, lineage.productionPath.timelines.contains(timeline), timeline != lineage.production {
            throw CairnError(
                .repoAmbiguousHistory,
                "timeline \(timeline) is an ancestor of production's timeline \(lineage.production): it is part of production's history",
                hint: "mark the copy's own timeline instead; `cairn timeline` lists them")
        }
        try TimelineRecord.write(
            TimelineRecord(
                timeline: timeline, verdict: verdict, decidedBy: "timeline \(verb)",
                reason: reason, at: Date()), to: repo, replace: true)
        return try Catalog.load(from: repo).lineage
    }
}

struct TimelineAdoptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adopt",
        abstract: "Record a timeline as production's (production moved there: a failover or an in-place restore).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var decision: TimelineDecision
    func run() async throws { try await decision.record(.production, global: global, verb: "adopt") }
}

struct TimelineMarkCopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mark-copy",
        abstract: "Record a timeline as a copy's (a side restore that archived into this repository).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var decision: TimelineDecision
    func run() async throws { try await decision.record(.copy, global: global, verb: "mark-copy") }
}
