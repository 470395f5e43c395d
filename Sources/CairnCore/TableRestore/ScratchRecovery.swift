import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// A backup restored into a scratch folder and recovered to a target by a temporary PostgreSQL, the way a drill
/// does it (its own port and socket, archiving off, trust only on its private socket): what `restore --table`
/// copies tables out of. The caller removes it with ``ScratchCleanup``.
struct ScratchRecovery {
    var drill: Drill
    var conninfo: String { drill.conninfo }

    /// Fails unless the scratch folder's file system has room for the backup's chain (its files, and 10 % for WAL).
    static func checkSpace(_ catalog: Catalog, backupId: String, folder: String) throws {
        let needed = Int64(Double((try catalog.chain(backupId)).reduce(0) { $0 + $1.size }) * 1.1)
        var st = statvfs()
        guard statvfs(folder, &st) == 0 else {
            throw CairnError(.localIO, "cannot read the free space of \(folder): \(String(cString: strerror(errno)))")
        }
        let free = Int64(st.f_bavail) * Int64(st.f_frsize)
        guard free >= needed else {
            throw CairnError(
                .localIO,
                "not enough space in \(folder) for a scratch copy of backup \(backupId): \(Units.formatBytes(needed)) needed, \(Units.formatBytes(free)) free",
                hint: "free space there, or give --scratch-dir on a file system with room")
        }
    }

    /// Lays the plan's backup out in `folder/data` (tablespaces beside it), starts PostgreSQL on it and waits until it
    /// stopped at the target and was promoted.
    static func recover(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, plan: RecoveryPlan, folder: String, user: String,
        tools: ToolRunner, parallelism: Int, timeout: Double, clock: any WallClock
    ) async throws -> ScratchRecovery {
        var drill = Drill(
            id: "table-restore", folder: folder, user: user, tools: tools, clock: clock, started: clock.now())
        var options = RestoreOperation.Options(targetDirectory: drill.data)
        options.archiveOff = true
        options.parallelism = parallelism
        for a in catalog.backup(plan.backupId)?.archives ?? [] {
            if let oid = a.tablespaceOid { options.tablespaceMap[oid] = folder + "/ts-\(oid)" }
        }
        let opts = options
        _ = try await Blocking.run {
            try RestoreOperation.run(
                repo: repo, pipeline: pipeline, catalog: catalog, plan: plan, options: opts, clock: clock)
        }
        try drill.prepareServer(ssl: false)
        let log = folder + "/postgres.log"
        _ = try await tools.run("pg_ctl", ["-D", drill.data, "-l", log, "-W", "start"])
        try await Drill.waitForPromotion(conninfo: drill.conninfo, log: log, timeout: timeout, clock: clock)
        try checkStopped(plan: plan, log: log)
        return ScratchRecovery(drill: drill)
    }

    /// PostgreSQL must say it stopped at the target (not at the end of the WAL): a table copied from another point
    /// would not be the table the user asked for.
    static func checkStopped(plan: RecoveryPlan, log: String) throws {
        guard
            plan.settings.contains(where: {
                $0.name.hasPrefix("recovery_target") && $0.name != "recovery_target_timeline"
            })
        else { return }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard text.contains("recovery stopping") || plan.settings.contains(where: { $0.value == "immediate" }) else {
            throw CairnError(
                .restoreTarget,
                "the scratch cluster did not stop at the target \(plan.target): it replayed to the end of the archived WAL",
                hint: "check the target (`cairn find` prints one for each candidate) and that its WAL is archived")
        }
    }

    /// The connection string of database `database` on the scratch server.
    func conninfo(database: String) -> String {
        "host=\(drill.socket) port=\(drill.port) user=\(drill.user) dbname=\(Conninfo.quote(database))"
    }
}

extension ScratchRecovery {
    /// A new scratch cluster (initdb, the drill's server settings) into which one database of a logical backup is
    /// restored with its roles: the same starting point for copying tables out as a recovered physical backup.
    static func fromLogical(
        repo: any Repository, pipeline: Pipeline, backup: BackupManifest, database: String, folder: String,
        user: String, tools: ToolRunner, clock: any WallClock
    ) async throws -> ScratchRecovery {
        guard backup.databases?.contains(where: { $0.name == database }) == true else {
            throw CairnError(
                .backupNotFound, "logical backup \(backup.id) has no database \(database)",
                hint: "it has: \((backup.databases ?? []).map(\.name).joined(separator: ", "))")
        }
        var drill = Drill(
            id: "table-restore", folder: folder, user: user, tools: tools, clock: clock, started: clock.now())
        _ = try await tools.run(
            "initdb", ["-D", drill.data, "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
        try drill.prepareServer(ssl: false)
        let log = folder + "/postgres.log"
        _ = try await tools.run("pg_ctl", ["-D", drill.data, "-l", log, "-w", "-t", "120", "start"])
        try await Drill.waitForPromotion(conninfo: drill.conninfo, log: log, timeout: 120, clock: clock)
        let catalog = Catalog(
            info: try RepositoryInfo.require(from: repo), backups: [backup],
            wal: WALArchive(segmentSize: backup.walSegmentSize))
        var options = LogicalRestoreOperation.Options(backupId: backup.id, database: database, into: database)
        (options.globals, options.force, options.jobs, options.tempDirectory) = (true, true, 2, folder)
        _ = try await LogicalRestoreOperation.run(
            repo: repo, pipeline: pipeline, catalog: catalog, conninfo: drill.conninfo, tools: tools, clock: clock,
            options: options)
        return ScratchRecovery(drill: drill)
    }
}
