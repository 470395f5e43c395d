import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn restore --backup ID --database NAME --into TARGET`: a database from a logical backup, through
/// `pg_restore` (in parallel with `--jobs` from a verified local copy of the dump, else streamed).
public enum LogicalRestoreOperation {
    public struct Options: Sendable {
        public var backupId: String
        public var database: String
        public var into: String
        /// Apply the backup's roles and tablespaces first (`psql` of the globals; existing roles are kept).
        public var globals = false
        public var jobs = 1
        /// Restore into a non-empty database, replacing the objects the dump contains (`--clean --if-exists`).
        public var force = false
        /// Do not set object owners (`--no-owner`).
        public var noOwner = false
        /// Where a dump is staged for a parallel restore.
        public var tempDirectory = NSTemporaryDirectory()

        public init(backupId: String, database: String, into: String) {
            self.backupId = backupId
            self.database = database
            self.into = into
        }
    }

    public struct Result: Sendable, Codable {
        public var backup: String
        public var database: String
        public var into: String
        public var created: Bool
        public var bytes: Int64
        public var seconds: Double
        /// Errors `psql` reported while applying the globals (typically roles that already exist).
        public var globalsErrors: [String]

        enum CodingKeys: String, CodingKey {
            case backup, database, into, created, bytes, seconds
            case globalsErrors = "globals_errors"
        }
    }

    static let logger = Logger(label: "cairn.restore")

    public static func run(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, conninfo: String, tools: ToolRunner,
        clock: any WallClock, options: Options
    ) async throws -> Result {
        let began = clock.now()
        let (backup, entry) = try chooseDump(catalog, options)
        let parsed = try Conninfo(conninfo)
        let target = try await inspectTarget(conninfo, parsed, into: options.into)
        try checkMajor(backup, entry, serverMajor: target.serverMajor)
        // The target server's programs (not older than the dump's, checked above): pg_restore reads newer dumps' formats.
        let tools = try await tools.matching(
            major: target.serverMajor, ["pg_restore", "psql"], for: "the target server")
        if target.exists && !target.empty && !options.force {
            throw CairnError(
                .restoreTargetNotEmpty, "database \"\(options.into)\" already holds objects",
                hint: "restore into a new database name, or pass --force to replace the objects the dump contains")
        }
        let globalsErrors = try await applyGlobals(
            backup, repo: repo, pipeline: pipeline, parsed: parsed, tools: tools, options: options)
        if !target.exists { try await createDatabase(options.into, conninfo: conninfo) }
        try await restoreDump(
            entry.object, of: backup, repo: repo, pipeline: pipeline, parsed: parsed, tools: tools,
            replacing: options.force && target.exists, options: options)
        logger.info(
            "logical restore done",
            metadata: ["backup": "\(backup.id)", "database": "\(entry.name)", "into": "\(options.into)"])
        return Result(
            backup: backup.id, database: entry.name, into: options.into, created: !target.exists,
            bytes: entry.object.digest.size, seconds: clock.now().timeIntervalSince(began), globalsErrors: globalsErrors
        )
    }

    /// The committed logical backup `options` names, and its dump of the database.
    static func chooseDump(
        _ catalog: Catalog, _ options: Options
    ) throws -> (BackupManifest, BackupManifest.LogicalDatabase) {
        guard let backup = catalog.backup(options.backupId) else {
            throw CairnError(
                .backupNotFound, "no committed backup \(options.backupId)", hint: "`cairn list` shows the backups")
        }
        guard backup.kind == .logical, let dbs = backup.databases else {
            throw CairnError(
                .backupNotFound, "backup \(backup.id) is a physical backup; --database needs a logical one",
                hint:
                    "restore a physical backup with --target-dir, or take a logical one with `cairn backup --type logical`"
            )
        }
        guard let entry = dbs.first(where: { $0.name == options.database }) else {
            throw CairnError(
                .backupNotFound, "backup \(backup.id) has no database \"\(options.database)\"",
                hint: "it has: \(dbs.map(\.name).joined(separator: ", "))")
        }
        return (backup, entry)
    }

    /// What the restore finds on the target server.
    struct TargetState {
        var serverMajor: Int
        /// The target database exists.
        var exists: Bool
        /// It holds no user objects (tables, extensions, large objects, functions).
        var empty: Bool
    }

    /// The target server's major, and whether the target database exists and is empty.
    static func inspectTarget(_ conninfo: String, _ parsed: Conninfo, into: String) async throws -> TargetState {
        try await Blocking.run { () -> TargetState in
            let c = try PGConnection(conninfo: conninfo)
            let major = c.serverVersion / 10000
            let exists = try c.scalar("SELECT 1 FROM pg_database WHERE datname = $1", [into]) != nil
            var empty = true
            if exists {
                let t = try PGConnection(conninfo: parsed.with(database: into))
                empty =
                    try t.scalar(
                        """
                        SELECT count(*) = 0 FROM (
                          SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                          UNION ALL SELECT 1 FROM pg_extension WHERE extname <> 'plpgsql'
                          UNION ALL SELECT 1 FROM pg_largeobject_metadata
                          UNION ALL SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) x
                        """) == "t"
            }
            return TargetState(serverMajor: major, exists: exists, empty: empty)
        }
    }

    /// Dumps restore only into the same or a newer major version.
    static func checkMajor(_ backup: BackupManifest, _ entry: BackupManifest.LogicalDatabase, serverMajor: Int) throws {
        let dumpMajor = backup.pgVersionNum / 10000
        guard serverMajor >= dumpMajor else {
            throw CairnError(
                .pgVersion,
                "the dump of \"\(entry.name)\" comes from PostgreSQL \(dumpMajor) and the target server runs PostgreSQL \(serverMajor); dumps restore only into the same or a newer major version",
                hint: "restore into a PostgreSQL \(dumpMajor) (or newer) server")
        }
    }

    /// With `--globals`, the backup's roles and tablespaces through `psql`; returns the errors it reported.
    static func applyGlobals(
        _ backup: BackupManifest, repo: any Repository, pipeline: Pipeline, parsed: Conninfo,
        tools: ToolRunner, options: Options
    ) async throws -> [String] {
        guard options.globals, let g = backup.globals else { return [] }
        let (c, env) = parsed.forTool(database: parsed.options["dbname"] ?? "postgres")
        let out = try await tools.runWritingInput(
            "psql", ["-X", "-q", "-v", "ON_ERROR_STOP=0", "--dbname=\(c)", "-f", "-"],
            environment: env
        ) { fd in
            try pipeline.load(repo, key: g.key, expected: g.digest) { try FileIO.writeAll(fd, $0) }
        }
        return out.stderr.split(separator: "\n").filter { $0.contains("ERROR:") }.map(String.init)
    }

    /// Creates the target database from template0.
    static func createDatabase(_ name: String, conninfo: String) async throws {
        try await Blocking.run {
            let c = try PGConnection(conninfo: conninfo)
            _ = try c.query("CREATE DATABASE \(SQL.ident(name)) TEMPLATE template0")
        }
    }

    /// `pg_restore` of the dump: streamed, or with `--jobs` from a verified staged copy (it needs a seekable file).
    static func restoreDump(
        _ object: BackupManifest.Object, of backup: BackupManifest, repo: any Repository, pipeline: Pipeline,
        parsed: Conninfo, tools: ToolRunner, replacing: Bool, options: Options
    ) async throws {
        let (target, env) = parsed.forTool(database: options.into)
        var args = ["--dbname=\(target)", "--no-password"]
        if replacing { args += ["--clean", "--if-exists"] }
        if options.noOwner { args.append("--no-owner") }
        guard options.jobs > 1 else {
            _ = try await tools.runWritingInput("pg_restore", args, environment: env) { fd in
                try pipeline.load(repo, key: object.key, expected: object.digest) { try FileIO.writeAll(fd, $0) }
            }
            return
        }
        // pg_restore --jobs needs a seekable file: stage a verified copy, restore, remove it.
        let staged = options.tempDirectory + "/cairn-\(backup.id)-\(getpid()).dump"
        defer { unlink(staged) }
        try await Blocking.run {
            let fd = open(staged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw CairnError(
                    .localIO, "cannot create \(staged): \(String(cString: strerror(errno)))",
                    hint: "free space or choose another --temp-dir")
            }
            defer { close(fd) }
            try pipeline.load(repo, key: object.key, expected: object.digest) { try FileIO.writeAll(fd, $0) }
        }
        _ = try await tools.run("pg_restore", args + ["--jobs=\(options.jobs)", staged], environment: env)
    }

}
