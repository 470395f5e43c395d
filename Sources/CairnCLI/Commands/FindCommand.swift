import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import Foundation

struct FindCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find",
        abstract: "List likely mistakes in the archived WAL: tables dropped, truncated, or emptied by one transaction.",
        discussion: """
            Decodes the archived WAL of a time range (default: the archive's last 24 hours) with pg_waldump, several \
            segments at a time, and lists tables dropped, tables truncated, and transactions that deleted or updated \
            at least --min-rows rows of one table, each with its commit time, transaction id and LSN, and the restore \
            target that stops just before it. Names come from the cluster's catalog, else from the relation map the \
            newest backup before the event recorded; a relation neither knows is shown by its file nodes.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Start of the range ('2026-11-25 14:00:00', local time, or with a zone).") var since:
        String?
    @Option(name: .long, help: "End of the range (default: the newest archived WAL).") var until: String?
    @Option(name: .long, help: "Report a transaction that deleted or updated at least this many rows of one table.")
    var minRows = 1000
    @Option(name: .long, help: "Only this table (schema.name; a name alone is in schema public).") var table: String?
    @Option(name: .long, help: "Only this database.") var database: String?
    @Option(name: .long, help: "Where segments are decoded (default: a private folder under $TMPDIR).") var workDir:
        String?
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func validate() throws {
        for (name, value) in [("--since", since), ("--until", until)] {
            if let v = value, TimeParser.parse(v) == nil {
                throw ValidationError(
                    "\(name) \"\(v)\" is not a time; use e.g. '2026-11-25 14:32:00' or '2026-11-25T14:32:00Z'")
            }
        }
        guard minRows >= 1 else { throw ValidationError("--min-rows must be at least 1") }
        if let t = table, FindOperation.qualify(t) == nil {
            throw ValidationError("--table \"\(t)\" is not a table name; use schema.name, e.g. public.orders")
        }
        if let w = workDir, !w.hasPrefix("/") { throw ValidationError("--work-dir must be an absolute path") }
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        let repo = try await ctx.reachableRepository("reading the archive").repo
        var options = FindOperation.Options(
            workFolder: (workDir ?? NSTemporaryDirectory())
                + "/cairn-find-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        options.since = since.flatMap(TimeParser.parse)
        options.until = until.flatMap(TimeParser.parse)
        options.minRows = minRows
        options.table = table.flatMap(FindOperation.qualify)
        options.database = database
        options.parallelism = ctx.config.limits.parallelism
        options.conninfo = ctx.config.cluster.connection
        let folder = options.workFolder
        let interrupt = Interruption.onInterrupt("the decoded segments were removed") {
            try? FileManager.default.removeItem(atPath: folder)
        }
        defer { Interruption.remove(interrupt) }
        let catalog = try await Blocking.run { try Catalog.load(from: repo) }
        let result = try await FindOperation.run(
            repo: repo, pipeline: ctx.makePipeline(), catalog: catalog, options: options, tools: ctx.tools,
            clock: SystemClock())
        if json { try Output.json(result) } else { printResult(result) }
        // Every candidate found is printed; then a search with holes fails once, so scripts do not trust it blindly.
        if !result.missing.isEmpty || !result.problems.isEmpty {
            throw CairnError(
                .walMissing,
                "the search is incomplete: \(result.missing.count) segment(s) missing from the archive, \(result.problems.count) stretch(es) pg_waldump could not read to the end",
                hint: "the candidates above are what the rest of the WAL shows; `cairn verify` lists the archive's gaps"
            )
        }
    }

    func printResult(_ r: FindOperation.Result) {
        Output.line(
            "searched \(r.segments) WAL segment(s), \(r.records) records, from \(Timestamp.format(r.since)) to \(Timestamp.format(r.until)) in \(Units.formatDuration(r.seconds))"
        )
        if let p = r.liveCatalogProblem {
            Output.line("  the cluster's catalog was not available (\(p)): names come from the backups' relation maps")
        }
        for m in r.missing {
            Output.line("  WARNING: segment \(m) is missing from the archive: what happened there is unknown")
        }
        for p in r.problems { Output.line("  WARNING: \(p)") }
        guard !r.candidates.isEmpty else {
            Output.line(
                "no candidate: no table dropped or truncated, no transaction deleted or updated \(minRows) rows of one table"
            )
            return
        }
        for c in r.candidates { Output.line(Self.describe(c)) }
    }

    /// `2026-12-03T09:12:01.123Z  drop      app public.orders  xid 1234  lsn 0/3000A10  → --target-lsn … --target-exclusive`
    static func describe(_ c: Candidate) -> String {
        let what: String
        switch c.kind {
        case .drop: what = "dropped"
        case .truncate: what = "truncated"
        case .delete: what = "\(c.rows ?? 0) rows deleted from"
        case .update: what = "\(c.rows ?? 0) rows updated in"
        }
        let name = c.table ?? "an unknown relation (file nodes \(c.fileNodes.map(String.init).joined(separator: ", ")))"
        let source = c.nameSource == "live" || c.table == nil ? "" : " (name from \(c.nameSource))"
        return
            "\(Timestamp.format(c.commitTime))  \(what) \(name)\(source) in database \(c.database ?? "oid \(c.databaseOid)")  xid \(c.xid)  lsn \(c.lsn)  → restore before it: \(c.restoreArguments.joined(separator: " "))"
    }
}
