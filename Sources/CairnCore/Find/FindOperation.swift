import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// `cairn find`: lists the likely mistakes in a time range of the archived WAL — tables dropped, tables truncated,
/// transactions that deleted or updated many rows of one table — each with the recovery target that stops just
/// before it. The WAL is decoded with `pg_waldump` of the repository's major (see ``WalScan``), the names come
/// from the live catalog and the backups' relation maps (see ``NameResolver``).
public enum FindOperation {
    public struct Options: Sendable {
        public var since: Date?
        public var until: Date?
        /// A delete or update counts when one transaction touched at least this many rows of one table.
        public var minRows = 1000
        /// Only this table (`schema.name`) / database.
        public var table: String?
        public var database: String?
        /// Chunks decoded at once.
        public var parallelism = 4
        /// The live cluster, whose catalog names relations first (nil: backups' maps only).
        public var conninfo: String?
        /// Where segments are decoded (a private folder, removed at the end).
        public var workFolder: String

        public init(workFolder: String) { self.workFolder = workFolder }
    }

    public struct Result: Codable, Sendable {
        public var since: Date
        public var until: Date
        public var segments: Int
        public var records: Int
        public var candidates: [Candidate]
        /// Segments missing inside the range, and chunks pg_waldump could not read to their end.
        public var missing: [String]
        public var problems: [String]
        /// Why the live catalog could not name relations (then only the backups' maps did).
        public var liveCatalogProblem: String?
        public var seconds: Double

        enum CodingKeys: String, CodingKey {
            case since, until, segments, records, candidates, missing, problems, seconds
            case liveCatalogProblem = "live_catalog_problem"
        }
    }

    public static func run(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, options: Options, tools: ToolRunner,
        clock: any WallClock
    ) async throws -> Result {
        let started = clock.now()
        let plan = try FindPlan.make(catalog, since: options.since, until: options.until)
        let tools = try await tools.matching(
            major: catalog.info.pgMajor, ["pg_waldump"], for: "the repository's WAL")
        if let table = options.table {
            try await Blocking.run {
                try checkTable(table, options: options, catalog: catalog, repo: repo, pipeline: pipeline)
            }
        }
        try FileManager.default.createDirectory(
            atPath: options.workFolder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: options.workFolder) }
        let (activity, problems) = try await WalScan.run(
            plan, repo: repo, pipeline: pipeline, tools: tools, workFolder: options.workFolder,
            parallelism: options.parallelism)
        let (candidates, liveProblem) = try await Blocking.run {
            let names = NameResolver(catalog: catalog, repo: repo, pipeline: pipeline, conninfo: options.conninfo)
            let all = MistakeClassifier.candidates(activity, minRows: options.minRows, names: names)
            return (select(all, plan: plan, options: options, names: names), names.liveProblem)
        }
        return Result(
            since: plan.since, until: plan.until, segments: plan.segmentCount, records: activity.records,
            candidates: candidates, missing: plan.missing, problems: problems, liveCatalogProblem: liveProblem,
            seconds: clock.now().timeIntervalSince(started))
    }

    /// The candidates inside the range, of the table and database asked for, with their database names.
    static func select(_ all: [Candidate], plan: FindPlan, options: Options, names: NameResolver) -> [Candidate] {
        all.compactMap { c in
            var c = c
            c.database = names.databaseName(c.databaseOid)
            guard c.commitTime >= plan.since, c.commitTime <= plan.until else { return nil }
            if let t = options.table, c.table != t { return nil }
            if let d = options.database, c.database != d { return nil }
            return c
        }
    }

    /// `--table` must name a table the live cluster or a backup's map knows.
    static func checkTable(
        _ table: String, options: Options, catalog: Catalog, repo: any Repository, pipeline: Pipeline
    )
        throws
    {
        let names = NameResolver(catalog: catalog, repo: repo, pipeline: pipeline, conninfo: options.conninfo)
        guard names.knowsTable(table, database: options.database) else {
            throw CairnError(
                .tableUnknown,
                "no table \(table)\(options.database.map { " in database \($0)" } ?? "") in the cluster's catalog or in any backup's relation map",
                hint:
                    "give the table as schema.name (e.g. public.orders), and --database when it is not in every database"
            )
        }
    }

    /// `schema.name` from what the user typed (`name` alone is `public.name`); nil when it is not a table name.
    public static func qualify(_ text: String) -> String? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else {
            return nil
        }
        return parts.count == 1 ? "public.\(text)" : text
    }
}
