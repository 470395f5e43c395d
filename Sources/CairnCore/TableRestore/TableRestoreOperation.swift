import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn restore --table`: brings tables back as they were at a recovery target, without touching anything else
/// in the live database. The backup that reaches the target is restored into a scratch cluster (the drill
/// machinery: its own folder, port and socket, removed on success, failure and interrupt), recovered to the target;
/// there each table is renamed (and its indexes, sequences and statistics objects whose names the live schema has),
/// dumped with `pg_dump -Fc`, and loaded into the live database in one transaction with `pg_restore` — or the dump
/// is written to a file.
public enum TableRestoreOperation {
    public struct Options: Sendable {
        /// `schema.name` of each table; none: the whole database (``DatabaseCopy``).
        public var tables: [String]
        /// The database the tables are in (scratch and live).
        public var database: String
        /// A new `schema.name` (one table only); default `<schema>.<name>_restored_<YYYYMMDDHHMMSS>`. For a whole
        /// database: the new database's name; default `<database>_restored_<YYYYMMDDHHMMSS>`.
        public var into: String?
        /// Write the dump here instead of loading it into the live database.
        public var output: String?
        public var scratchDirectory: String
        public var restoreCommand: String
        /// The role to connect to the scratch server as (the configured connection's user).
        public var user: String
        /// The live cluster (libpq connection string, any database).
        public var liveConninfo: String
        public var backupId: String?
        public var timeline: UInt32?
        public var parallelism = 4
        /// How long recovery may take.
        public var timeout: Double = 3600

        public init(
            tables: [String], database: String, scratchDirectory: String, restoreCommand: String, user: String,
            liveConninfo: String
        ) {
            (self.tables, self.database, self.scratchDirectory) = (tables, database, scratchDirectory)
            (self.restoreCommand, self.user, self.liveConninfo) = (restoreCommand, user, liveConninfo)
        }
    }

    public struct Result: Codable, Sendable {
        public var backupId: String
        public var target: String
        public var database: String
        public var tables: [Restored]
        /// A whole database restored: its new name in the live cluster (or, with `output`, what it would be).
        public var restoredDatabase: String?
        /// The dump written (`--output`), when not loaded into the live database.
        public var output: String?
        /// What was not restored (foreign keys to other tables).
        public var notes: [String]
        public var seconds: Double

        public struct Restored: Codable, Sendable {
            public var source: String
            public var restoredAs: String
            public var rows: Int64

            enum CodingKeys: String, CodingKey {
                case source, rows
                case restoredAs = "restored_as"
            }
        }

        enum CodingKeys: String, CodingKey {
            case target, database, tables, output, notes, seconds
            case backupId = "backup"
            case restoredDatabase = "restored_database"
        }
    }

    static let logger = Logger(label: "cairn.restore-table")

    /// `target` nil: the logical backup `options.backupId` as it was dumped.
    public static func run(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, target: RecoveryTarget?, inclusive: Bool,
        options: Options, tools: ToolRunner, clock: any WallClock
    ) async throws -> Result {
        let started = clock.now()
        let stamp = TableNaming.stamp(started)
        let source = try Source.choose(catalog, target: target, inclusive: inclusive, options: options, now: started)
        let tools = try await tools.matching(
            major: source.backup.pgVersionNum / 10000, ["initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore"],
            for: "backup \(source.backup.id)")
        let moves = try self.moves(options, stamp: stamp)
        let wholeDatabase = options.tables.isEmpty ? DatabaseCopy.target(options, stamp: stamp) : nil
        try await Blocking.run {
            if let wholeDatabase {
                if options.output == nil { try DatabaseCopy.checkAbsent(wholeDatabase, options: options) }
            } else {
                try checkLive(moves, options: options)
            }
        }
        let folder = options.scratchDirectory + "/" + Layout.backupId(at: started, type: "T")
        try ScratchRecovery.checkSpace(catalog, backupId: source.backup.id, folder: options.scratchDirectory)
        ScratchCleanup.register(folder: folder, data: folder + "/data")
        defer { ScratchCleanup.clean(folder: folder) }
        try makeFolder(folder)
        let scratch = try await source.scratch(
            repo: repo, pipeline: pipeline, catalog: catalog, folder: folder, options: options, tools: tools,
            clock: clock)
        var (restored, notes): ([Result.Restored], [String])
        if let wholeDatabase {
            (restored, notes) = (
                try await DatabaseCopy.copy(
                    wholeDatabase, scratch: scratch, options: options, folder: folder, tools: tools),
                []
            )
        } else {
            (restored, notes) = try await copy(
                moves, scratch: scratch, options: options, folder: folder, tools: tools, stamp: stamp)
        }
        return Result(
            backupId: source.backup.id, target: source.description, database: options.database, tables: restored,
            restoredDatabase: wholeDatabase, output: options.output, notes: notes,
            seconds: clock.now().timeIntervalSince(started))
    }

    /// Where the tables come from: a physical backup recovered to a target, or a logical backup.
    struct Source {
        var backup: BackupManifest
        var plan: RecoveryPlan?

        var description: String { plan?.target ?? "the dump of logical backup \(backup.id)" }

        static func choose(
            _ catalog: Catalog, target: RecoveryTarget?, inclusive: Bool, options: Options, now: Date
        ) throws -> Source {
            if let id = options.backupId, let b = catalog.backup(id), b.kind == .logical {
                guard target == nil else {
                    throw CairnError(
                        .usage,
                        "backup \(id) is a logical backup: it restores as it was dumped, without a recovery target",
                        hint: "leave out the target, or give a physical backup")
                }
                return Source(backup: b)
            }
            let plan = try RecoveryPlanner.plan(
                catalog, target: target ?? .immediate, timeline: options.timeline, backupId: options.backupId,
                action: .promote, inclusive: inclusive, restoreCommand: options.restoreCommand, now: now)
            return Source(backup: catalog.backup(plan.backupId)!, plan: plan)
        }

        func scratch(
            repo: any Repository, pipeline: Pipeline, catalog: Catalog, folder: String, options: Options,
            tools: ToolRunner, clock: any WallClock
        ) async throws -> ScratchRecovery {
            guard let plan else {
                return try await ScratchRecovery.fromLogical(
                    repo: repo, pipeline: pipeline, backup: backup, database: options.database, folder: folder,
                    user: options.user, tools: tools, clock: clock)
            }
            return try await ScratchRecovery.recover(
                repo: repo, pipeline: pipeline, catalog: catalog, plan: plan, folder: folder, user: options.user,
                tools: tools, parallelism: options.parallelism, timeout: options.timeout, clock: clock)
        }
    }

    /// Each table and its name in the live database.
    static func moves(_ options: Options, stamp: String) throws -> [TableMove] {
        guard options.into == nil || options.tables.count <= 1 else {
            throw CairnError(.usage, "--into names one table; restore several tables without it")
        }
        return options.tables.map { t in
            let p = t.split(separator: ".", maxSplits: 1).map(String.init)
            let into = options.into?.split(separator: ".", maxSplits: 1).map(String.init)
            return TableMove(
                schema: p[0], name: p[1], targetSchema: into?[0] ?? p[0],
                targetName: into?[1] ?? TableNaming.restored(p[1], stamp: stamp))
        }
    }

    static func checkLive(_ moves: [TableMove], options: Options) throws {
        let live = try PGConnection(conninfo: try Conninfo(options.liveConninfo).with(database: options.database))
        try TableCopy.checkLive(moves, live: live)
    }

    static func makeFolder(_ folder: String) throws {
        try Interruption.check()
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CairnError(
                .localIO, "cannot create the scratch folder \(folder): \(error.localizedDescription)",
                hint: "give --scratch-dir a folder the user \(NSUserName()) can write")
        }
    }

    /// Renames in the scratch cluster, dumps, and loads into the live database (or writes `--output`).
    static func copy(
        _ moves: [TableMove], scratch: ScratchRecovery, options: Options, folder: String, tools: ToolRunner,
        stamp: String
    ) async throws -> ([Result.Restored], [String]) {
        let scratchDB = scratch.conninfo(database: options.database)
        let liveDB = try Conninfo(options.liveConninfo).with(database: options.database)
        let (notes, counts) = try await Blocking.run { () -> ([String], [Int64]) in
            let s = try PGConnection(conninfo: scratchDB)
            let live = try PGConnection(conninfo: liveDB)
            var notes: [String] = []
            for m in moves {
                let taken = try TableCopy.takenNames(schema: m.targetSchema, live: live)
                notes += try TableCopy.prepare(m, scratch: s, taken: taken, stamp: stamp)
            }
            return (notes, try moves.map { try TableCopy.rowCount($0.targetSQL, conn: s) })
        }
        let dump = folder + "/tables.dump"
        _ = try await tools.run(
            "pg_dump",
            ["--format=custom", "--no-publications", "--no-subscriptions", "--file=\(dump)", "--dbname=\(scratchDB)"]
                + moves.map { "--table=\($0.targetSQL)" })
        if let output = options.output {
            try place(dump, at: output)
        } else {
            try await load(dump, options: options, tools: tools)
            let loaded = try await Blocking.run {
                let live = try PGConnection(conninfo: liveDB)
                return try moves.map { try TableCopy.rowCount($0.targetSQL, conn: live) }
            }
            guard loaded == counts else {
                throw CairnError(
                    .restoreFailed,
                    "the live database has \(loaded) rows in the restored tables, the scratch cluster \(counts)")
            }
        }
        let restored = zip(moves, counts).map { Result.Restored(source: $0.source, restoredAs: $0.target, rows: $1) }
        return (restored, notes)
    }

    /// `pg_restore` into the live database, in one transaction: all the tables or none.
    static func load(_ dump: String, options: Options, tools: ToolRunner) async throws {
        let (conninfo, env) = try Conninfo(options.liveConninfo).forTool(database: options.database)
        _ = try await tools.run(
            "pg_restore",
            ["--single-transaction", "--exit-on-error", "--no-password", "--dbname=\(conninfo)", dump],
            environment: env)
    }

    /// Moves the dump to `output` (copied next to it first, then renamed: no half-written file under that name).
    static func place(_ dump: String, at output: String) throws {
        let tmp = output + ".cairn-tmp-\(getpid())"
        do {
            try? FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.copyItem(atPath: dump, toPath: tmp)
            guard rename(tmp, output) == 0 else {
                throw CairnError(.localIO, "cannot rename \(tmp) to \(output): \(String(cString: strerror(errno)))")
            }
        } catch let e as CairnError {
            try? FileManager.default.removeItem(atPath: tmp)
            throw e
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw CairnError(.localIO, "cannot write \(output): \(error.localizedDescription)")
        }
    }
}
