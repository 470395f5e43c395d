import CairnBase
import CairnPostgres
import Foundation

/// `cairn restore --database NAME` with a recovery target (no `--table`): the whole database as it was at the
/// target, brought into the live cluster as a new database (`<name>_restored_<YYYYMMDDHHMMSS>`, or `--into`), or
/// written as a dump. Nothing else in the live cluster changes: the new database is created empty from `template0`
/// and loaded in one transaction; when the load fails it is dropped again.
enum DatabaseCopy {
    /// The new database's name.
    static func target(_ options: TableRestoreOperation.Options, stamp: String) -> String {
        options.into ?? TableNaming.restored(options.database, stamp: stamp)
    }

    /// The live cluster must not have a database of that name.
    static func checkAbsent(_ name: String, options: TableRestoreOperation.Options) throws {
        let live = try PGConnection(conninfo: options.liveConninfo)
        guard try live.scalar("SELECT 1 FROM pg_database WHERE datname = $1", [name]) == nil else {
            throw CairnError(
                .tableExists, "the live cluster already has a database \(name)",
                hint: "choose another name with --into NAME, or drop that database first")
        }
    }

    /// Dumps the scratch cluster's database, then writes the dump to `--output` or loads it into a new database of
    /// the live cluster and checks every table's rows against the scratch cluster.
    static func copy(
        _ name: String, scratch: ScratchRecovery, options: TableRestoreOperation.Options, folder: String,
        tools: ToolRunner
    ) async throws -> [TableRestoreOperation.Result.Restored] {
        let scratchDB = scratch.conninfo(database: options.database)
        let expected = try await Blocking.run { try rowCounts(PGConnection(conninfo: scratchDB)) }
        let dump = folder + "/database.dump"
        _ = try await tools.run(
            "pg_dump",
            ["--format=custom", "--no-publications", "--no-subscriptions", "--file=\(dump)", "--dbname=\(scratchDB)"])
        if let output = options.output {
            try TableRestoreOperation.place(dump, at: output)
        } else {
            try await load(dump, into: name, options: options, tools: tools)
            let loaded = try await Blocking.run {
                try rowCounts(PGConnection(conninfo: try Conninfo(options.liveConninfo).with(database: name)))
            }
            guard loaded == expected else {
                throw CairnError(
                    .restoreFailed,
                    "database \(name) has other tables or rows than the scratch cluster's \(options.database)",
                    hint: "database \(name) is left as it is for inspection; drop it when done")
            }
        }
        return [.init(source: options.database, restoredAs: name, rows: expected.values.reduce(0, +))]
    }

    /// `CREATE DATABASE … TEMPLATE template0`, then `pg_restore` in one transaction; a failed load drops it again.
    static func load(
        _ dump: String, into name: String, options: TableRestoreOperation.Options, tools: ToolRunner
    ) async throws {
        try await Blocking.run {
            let live = try PGConnection(conninfo: options.liveConninfo)
            _ = try live.query("CREATE DATABASE \(SQL.ident(name)) TEMPLATE template0")
        }
        do {
            let (conninfo, env) = try Conninfo(options.liveConninfo).forTool(database: name)
            _ = try await tools.run(
                "pg_restore",
                ["--single-transaction", "--exit-on-error", "--no-password", "--dbname=\(conninfo)", dump],
                environment: env)
        } catch {
            try? await Blocking.run {
                _ = try PGConnection(conninfo: options.liveConninfo).query(
                    "DROP DATABASE IF EXISTS \(SQL.ident(name))")
            }
            throw error
        }
    }

    /// Rows of every ordinary table outside the system schemas, by `schema.name`.
    static func rowCounts(_ c: PGConnection) throws -> [String: Int64] {
        let tables = try c.query(
            """
            SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
            """
        ).compactMap { $0.first ?? nil }
        var counts: [String: Int64] = [:]
        for t in tables { counts[t] = try TableCopy.rowCount(t, conn: c) }
        return counts
    }
}
