import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import Foundation

/// `cairn restore --table schema.name [--table …]`: tables brought back from a point in time into the live
/// database under new names (see ``TableRestoreOperation``); `cairn restore --database NAME` with a recovery target
/// (and no `--table`): the whole database, as a new database of the live cluster.
extension RestoreCommand {
    var tableMode: Bool { !table.isEmpty }

    /// `--database` with a recovery target (or `--before`) and no target directory: one database at a point in time.
    var databaseMode: Bool {
        table.isEmpty && database != nil && targetDir == nil
            && ([targetTime, targetLsn, targetXid, targetName, before].contains { $0 != nil } || immediate || latest)
    }

    /// What `--table` takes and refuses.
    func validateTables() throws {
        for t in table where FindOperation.qualify(t) == nil {
            throw ValidationError("--table \"\(t)\" is not a table name; use schema.name, e.g. public.orders")
        }
        let others = [
            targetDir != nil, delta, standby, !tablespaceMap.isEmpty, force, globals, jobs != nil, noOwner,
            tempDir != nil, archiveMode != nil, targetAction != nil, dryRun
        ]
        guard !others.contains(true) else {
            throw ValidationError(
                "--table (and --database with a target) restores into the live cluster; it does not take --target-dir, --delta, --standby, --tablespace-map, --force, --globals, --jobs, --no-owner, --temp-dir, --archive-mode, --target-action or --dry-run"
            )
        }
        let targets = [
            targetTime != nil, targetLsn != nil, targetXid != nil, targetName != nil, immediate, latest, before != nil
        ]
        guard targets.filter({ $0 }).count == 1 || (targets.allSatisfy { !$0 } && backup != nil) else {
            throw ValidationError(
                "--table (or --database alone) needs exactly one target: --before (a candidate of `cairn find`), --target-time, --target-lsn, --target-xid, --target-name, --immediate or --latest (none with --backup of a logical backup)"
            )
        }
        if let b = before, Self.parseBefore(b) == nil {
            throw ValidationError(
                "--before \"\(b)\" is not a candidate of `cairn find` (XID@LSN), an LSN or a transaction id")
        }
        if let i = into, tableMode, !i.contains(".") || FindOperation.qualify(i) == nil {
            throw ValidationError("--into with --table takes schema.name, e.g. public.orders_old")
        }
        if let i = into, databaseMode, i.isEmpty || i.utf8.count > 63 {
            throw ValidationError("--into with --database takes the new database's name (at most 63 bytes)")
        }
        if into != nil && table.count > 1 {
            throw ValidationError("--into names one table; restore several tables without it")
        }
        if let o = output, FileManager.default.fileExists(atPath: o) {
            throw ValidationError("--output \(o) exists; give a new file name (cairn does not overwrite it)")
        }
        if let s = scratchDir, !s.hasPrefix("/") { throw ValidationError("--scratch-dir must be an absolute path") }
    }

    /// `--before XID@LSN` or `LSN`: stop just before that commit record; `--before XID`: just before that transaction.
    static func parseBefore(_ text: String) -> RecoveryTarget? {
        let lsnText = text.split(separator: "@").last.map(String.init) ?? text
        if text.contains("@") || text.contains("/") { return LSN(lsnText).map { .lsn($0) } }
        return UInt32(text).map { .xid(String($0)) }
    }

    func runTables(_ ctx: AppContext) async throws {
        let repo = try await ctx.reachableRepository("restoring tables").repo
        let conninfo = try Conninfo(ctx.config.cluster.connection)
        let exe = ShellQuote.quote(Spawn.currentExecutable)
        var options = TableRestoreOperation.Options(
            tables: table.compactMap(FindOperation.qualify),
            database: database ?? conninfo.options["dbname"] ?? conninfo.options["user"] ?? "postgres",
            scratchDirectory: scratchDir ?? ctx.config.drills.scratchDirectory,
            restoreCommand: "\(exe) --config \(ShellQuote.quote(ctx.absoluteConfigPath)) wal-fetch %f %p",
            user: conninfo.options["user"] ?? NSUserName(), liveConninfo: ctx.config.cluster.connection)
        (options.into, options.output, options.backupId) = (into, output, backup)
        (options.timeline, options.parallelism) = (targetTimeline, ctx.config.limits.parallelism)
        let given = [targetTime, targetLsn, targetXid, targetName].contains { $0 != nil } || immediate || latest
        let (target, inclusive): (RecoveryTarget?, Bool) =
            before.flatMap(Self.parseBefore).map { ($0, false) } ?? (given ? self.target : nil, !targetExclusive)
        let interrupt = Interruption.onInterrupt("the scratch cluster was stopped and removed") {
            let folders = ScratchCleanup.cleanAll()
            for _ in 0..<10 where folders.contains(where: { FileManager.default.fileExists(atPath: $0) }) {
                usleep(200_000)
                for f in folders { try? FileManager.default.removeItem(atPath: f) }
            }
        }
        defer { Interruption.remove(interrupt) }
        let result = try await Lease.holding(.restore, repo: repo, ttl: Self.leaseTTL, fence: true) { [options] _ in
            let catalog = try await Blocking.run { try Catalog.load(from: repo) }
            return try await TableRestoreOperation.run(
                repo: repo, pipeline: ctx.makePipeline(), catalog: catalog, target: target, inclusive: inclusive,
                options: options, tools: ctx.tools, clock: SystemClock())
        }
        if json { return try Output.json(result) }
        Output.line(
            "restored from backup \(result.backupId) at target \(result.target) in \(Units.formatDuration(result.seconds)):"
        )
        for t in result.tables where result.restoredDatabase != nil {
            Output.line(
                "  database \(t.source) → \(t.restoredAs) (\(t.rows) rows in its tables)\(result.output == nil ? "" : ", as a dump")"
            )
        }
        for t in result.tables where result.restoredDatabase == nil {
            Output.line(
                "  \(t.source) → \(t.restoredAs) (\(t.rows) rows)\(result.output == nil ? " in database \(result.database)" : "")"
            )
        }
        if let o = result.output, let name = result.restoredDatabase {
            Output.line("  written to \(o) (createdb \(name) && pg_restore -d \(name) \(o) loads it)")
        } else if let o = result.output {
            Output.line("  written to \(o) (pg_restore -d \(result.database) \(o) loads it)")
        }
        for n in result.notes { Output.line("  note: \(n)") }
    }
}

extension RestoreCommand {
    /// PostgreSQL's server programs refuse root: like `cairn drill`, a table restore started as root switches to the
    /// cluster's owner before any work, and reads its configuration again as that user.
    func runAsClusterOwner(_ ctx: AppContext) throws -> AppContext {
        let user = try ServerUser.resolve(dataDirectory: ctx.config.cluster.dataDirectory)
        try ServerUser.become(user)
        ctx.logger.notice("cairn was started as root: the table restore runs as \(user.name) (uid \(user.uid))")
        return try AppContext.load(global)
    }
}
