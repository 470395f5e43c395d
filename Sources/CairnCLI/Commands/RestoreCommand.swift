import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a physical backup and set up recovery to a target.",
        discussion: """
            Picks the newest backup that can reach the target on the target timeline (or --backup), verifies every \
            object's digest while laying it out, and writes the recovery settings (restore_command using cairn \
            wal-fetch, the target, recovery.signal). Start PostgreSQL on the directory to replay WAL to the target. \
            A target outside what the repository can reach is refused before anything is written. Run it as the OS \
            user that will own the cluster. --delta restores onto an existing stopped data directory of this cluster \
            and writes only the blocks that differ; --standby builds a standby (standby.signal, --primary-conninfo).
            """)

    enum ArchiveMode: String, ExpressibleByArgument, CaseIterable { case preserve, off }

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The new data directory (empty or absent; with --delta an existing one).") var targetDir:
        String?
    @Option(name: .long, help: "Restore this backup instead of choosing one.") var backup: String?
    @Option(
        name: .long, help: "Recover to this time: '2026-11-25 14:32:00' (local time) or with a zone ('…Z', '…+01:00').")
    var targetTime: String?
    @Option(name: .long, help: "Recover to this WAL location (e.g. 0/3000060).") var targetLsn: String?
    @Option(name: .long, help: "Recover to this transaction id.") var targetXid: String?
    @Option(name: .long, help: "Recover to this restore point (pg_create_restore_point).") var targetName: String?
    @Flag(name: .long, help: "Stop as soon as the backup is consistent.") var immediate = false
    @Flag(name: .long, help: "Replay all archived WAL (the default).") var latest = false
    @Option(name: .long, help: "What PostgreSQL does at the target: promote (the default), pause or shutdown.")
    var targetAction: RecoveryTargetAction?
    @Option(name: .long, help: "Timeline to recover along (default: the newest).") var targetTimeline: UInt32?
    @Flag(name: .long, help: "Stop just before the target instead of just after it.") var targetExclusive = false
    @Option(name: .long, parsing: .singleValue, help: "Restore a tablespace elsewhere: OID=DIRECTORY (repeatable).")
    var tablespaceMap: [String] = []
    @Option(
        name: .long,
        help:
            "preserve the backup's archive settings, or turn archiving off in the restored cluster (default: preserve when restoring into production's data directory, off for any other directory)."
    )
    var archiveMode: ArchiveMode?
    @Flag(
        name: .long,
        help:
            "Delete the contents of a non-empty target directory first (logical: replace the dump's objects in a non-empty database; with --delta: accept a directory of another cluster or one that is no data directory)."
    ) var force = false
    @Flag(
        name: .long,
        help:
            "Restore onto an existing stopped data directory of this cluster: compare every 8 KiB block with the backup, write only what differs, remove files the backup does not have."
    )
    var delta = false
    @Flag(name: .long, help: "Build a standby: standby.signal and --primary-conninfo instead of a recovery target.")
    var standby = false
    @Option(
        name: .long,
        help:
            "With --standby: the libpq connection string of the primary (written to postgresql.auto.conf, never printed)."
    )
    var primaryConninfo: String?
    @Option(
        name: .long,
        help: "With --standby: the replication slot on the primary that keeps the WAL this standby still needs.")
    var primarySlotName: String?
    @Option(
        name: .long,
        help:
            "Logical restore: the database to restore from a logical backup (needs --backup and --into); with --table: the tables' database; with a recovery target alone: restore this database at that point as a new database."
    )
    var database: String?
    @Option(
        name: .long,
        help: "Logical restore: the database to restore into (created if missing); with --table: the new schema.name.")
    var into: String?
    @Flag(name: .long, help: "Logical restore: apply the backup's roles and tablespaces first.") var globals = false
    @Option(name: .long, help: "Logical restore: parallel pg_restore jobs (default: limits.parallelism).") var jobs:
        Int?
    @Flag(name: .long, help: "Logical restore: do not set object owners.") var noOwner = false
    @Option(name: .long, help: "Logical restore: where a dump is staged for a parallel restore.") var tempDir: String?
    @Option(
        name: .long, parsing: .singleValue,
        help: "Bring this table (schema.name) back into the live database as it was at the target (repeatable).")
    var table: [String] = []
    @Option(name: .long, help: "With --table: the target that stops just before a candidate of `cairn find` (XID@LSN).")
    var before: String?
    @Option(name: .long, help: "With --table: write a pg_restore-able dump here instead of loading it.") var output:
        String?
    @Option(
        name: .long,
        help: "With --table: where the scratch cluster goes (default: the drill policy's scratch_directory).")
    var scratchDir: String?
    @Flag(name: .long, help: "Print the plan (backup, WAL range, settings) and write nothing.") var dryRun = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func validate() throws {
        if tableMode || databaseMode { return try validateTables() }
        if before != nil || output != nil || scratchDir != nil {
            throw ValidationError("--before, --output and --scratch-dir go with --table")
        }
        if database != nil || into != nil {
            guard database != nil, into != nil, backup != nil else {
                throw ValidationError("a logical restore needs --backup ID, --database NAME and --into TARGETDB")
            }
            guard targetDir == nil, targetTime == nil, targetLsn == nil, targetXid == nil, targetName == nil,
                !immediate, !latest
            else {
                throw ValidationError(
                    "--database with --backup and --into restores a logical backup (no --target-dir, no recovery target); with a recovery target and without --target-dir it restores that database at that point into the live cluster"
                )
            }
            if let j = jobs, !(1...64).contains(j) { throw ValidationError("--jobs must be between 1 and 64") }
            return
        }
        if globals || noOwner || jobs != nil || tempDir != nil {
            throw ValidationError(
                "--globals, --jobs, --no-owner and --temp-dir apply to a logical restore (--database)")
        }
        try validateStandby()
        let targets = [targetTime != nil, targetLsn != nil, targetXid != nil, targetName != nil, immediate, latest]
            .filter { $0 }
        guard targets.count <= 1 else {
            throw ValidationError(
                "give exactly one target: --target-time, --target-lsn, --target-xid, --target-name, --immediate or --latest"
            )
        }
        if let t = targetTime, TimeParser.parse(t) == nil {
            throw ValidationError(
                "--target-time \"\(t)\" is not a time; use e.g. '2026-11-25 14:32:00' or '2026-11-25T14:32:00Z'")
        }
        if let l = targetLsn, LSN(l) == nil {
            throw ValidationError("--target-lsn \"\(l)\" is not an LSN such as 0/3000060")
        }
        if let n = targetName,
            n.isEmpty || n.utf8.count > 63 || n.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
        {
            throw ValidationError(
                "--target-name must be a restore point name as pg_create_restore_point takes it: 1 to 63 bytes, no control characters"
            )
        }
        if let x = targetXid, UInt64(x) == nil {
            throw ValidationError("--target-xid must be a transaction id (a number)")
        }
        if targetDir == nil && !dryRun { throw ValidationError("--target-dir is required (or use --dry-run)") }
        if let d = targetDir, !d.hasPrefix("/") { throw ValidationError("--target-dir must be an absolute path") }
        for m in tablespaceMap {
            let p = m.split(separator: "=", maxSplits: 1)
            guard p.count == 2, UInt32(p[0]) != nil, p[1].hasPrefix("/") else {
                throw ValidationError("--tablespace-map takes OID=/absolute/directory, not \"\(m)\"")
            }
        }
    }

    var target: RecoveryTarget {
        if let t = targetTime, let d = TimeParser.parse(t) { return .time(d) }
        if let l = targetLsn, let lsn = LSN(l) { return .lsn(lsn) }
        if let x = targetXid { return .xid(x) }
        if let n = targetName { return .name(n) }
        if immediate { return .immediate }
        return .latest
    }

    /// `--standby` follows its primary: no recovery target; `--primary-conninfo` only with it.
    func validateStandby() throws {
        if primaryConninfo != nil && !standby { throw ValidationError("--primary-conninfo needs --standby") }
        if primarySlotName != nil && !standby { throw ValidationError("--primary-slot-name needs --standby") }
        if let slot = primarySlotName,
            slot.isEmpty || slot.count > 63
                || !slot.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        {
            throw ValidationError(
                "--primary-slot-name \(slot) is not a replication slot name (lower case letters, digits and _, at most 63)"
            )
        }
        guard standby else { return }
        let targets = [
            targetTime != nil, targetLsn != nil, targetXid != nil, targetName != nil, immediate, targetAction != nil,
            targetExclusive
        ]
        guard !targets.contains(true) else {
            throw ValidationError(
                "--standby replays WAL without end and takes no recovery target (--target-time, --target-lsn, --target-xid, --target-name, --immediate, --target-action, --target-exclusive)"
            )
        }
        if let c = primaryConninfo, c.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError(
                "--primary-conninfo must be a libpq connection string such as 'host=primary user=replicator'")
        }
    }

    func run() async throws {
        var ctx = try AppContext.load(global)
        if tableMode || databaseMode {
            if ServerUser.isRoot { ctx = try runAsClusterOwner(ctx) }
            return try await runTables(ctx)
        }
        if let database, let into, let backup {
            return try await runLogical(ctx, backup: backup, database: database, into: into)
        }
        // With several repositories: the first that can restore the target does; one that fails (unreachable, a
        // damaged object, a target beyond its archive) hands over to the next, which completes what was written
        // as a delta restore.
        let repos = try ctx.makeRepositories()
        var resume = false
        for (i, m) in repos.members.enumerated() {
            do {
                return try await restoreFrom(ctx, repo: m.repo, resume: resume)
            } catch
                where i < repos.members.count - 1
                && (RepositorySet.isRepositoryFailure(error) || (error as? CairnError)?.code == .restoreTarget)
            {
                Output.stderr(
                    "cairn: warning: restoring from repository \(m.name) failed (\(describeError(error).message)); trying repository \(repos.members[i + 1].name)"
                )
                resume = resume || !(targetDir.map(Self.isEmptyDirectory) ?? true)
            }
        }
    }

    /// True when `path` does not exist or is an empty directory.
    static func isEmptyDirectory(_ path: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).isEmpty
    }

    /// Restores from one repository; `resume` completes what an attempt from another repository wrote (a delta
    /// restore over it).
    func restoreFrom(_ ctx: AppContext, repo: any Repository, resume: Bool) async throws {
        // 1. A lease keeps expire off the backup and WAL until recovery ends (released by recovery_end_command,
        //    renewed by wal-fetch while PostgreSQL replays); first wait for a running expire to finish.
        let lease = try await Blocking.run {
            try Lease.take(.restore, repo: repo, ttl: Self.leaseTTL, clock: SystemClock())
        }
        var keepLease = false
        defer { if !keepLease { Lease.release(lease.id, repo: repo) } }
        try await Blocking.run { try Lease.awaitNoExpire(repo: repo, clock: SystemClock()) }
        // 2. The options: recovery commands naming the lease, whether the restored cluster archives.
        let archiving =
            archiveMode.map { ArchiveDecision(mode: $0, why: "--archive-mode \($0.rawValue)") }
            ?? ArchiveDecision.forTarget(targetDir ?? "", ctx: ctx)
        var (options, restoreCommand) = restoreOptions(ctx, lease: lease, archiveOff: archiving.mode == .off)
        if resume { (options.delta, options.force) = (true, true) }
        // 3. Plan, check everything, narrow the lease to the plan, lay the backup out.
        let (plan, result) = try await restore(
            ctx, repo: repo, lease: lease, options: options, restoreCommand: restoreCommand)
        keepLease = result != nil
        // 4. Say what was done.
        if json { return result != nil ? try Output.json(result!) : try Output.json(plan) }
        printSummary(plan, result, archiving: archiving)
    }

    /// The restore's options and its `restore_command`.
    func restoreOptions(_ ctx: AppContext, lease: Lease, archiveOff: Bool) -> (RestoreOperation.Options, String) {
        let exe = ShellQuote.quote(Spawn.currentExecutable)
        let conf = ShellQuote.quote(ctx.absoluteConfigPath)
        var options = RestoreOperation.Options(targetDirectory: targetDir ?? "")
        options.force = force
        options.delta = delta
        options.standby = standby
        options.primaryConninfo = primaryConninfo
        options.primarySlotName = primarySlotName
        options.archiveOff = archiveOff
        options.parallelism = ctx.config.limits.parallelism
        options.recoveryEndCommand =
            "\(exe) --config \(conf) wal-prefetch --remove-spool --spool pg_wal/cairn-prefetch --release-lease \(lease.id)"
        for m in tablespaceMap {
            let p = m.split(separator: "=", maxSplits: 1)
            options.tablespaceMap[UInt32(p[0])!] = String(p[1])
        }
        return (options, "\(exe) --config \(conf) wal-fetch --lease \(lease.id) %f %p")
    }

    /// Plans (a dry run stops there), checks every problem at once before anything is written, narrows the
    /// lease to the plan, and lays the backup out.
    func restore(
        _ ctx: AppContext, repo: any Repository, lease: Lease, options: RestoreOperation.Options,
        restoreCommand: String
    ) async throws -> (RecoveryPlan, RestoreOperation.Result?) {
        let (target, backup, action, tli, inclusive, dryRun) = (
            self.target, self.backup, targetAction ?? .promote, targetTimeline,
            !targetExclusive, self.dryRun
        )
        let progress = ProgressLine(label: "restore", global: global, json: json)
        defer { progress.done() }
        return try await Blocking.run { () -> (RecoveryPlan, RestoreOperation.Result?) in
            let catalog = try Catalog.load(from: repo)
            let makePlan = {
                try RecoveryPlanner.plan(
                    catalog, target: target, timeline: tli, backupId: backup, action: action,
                    inclusive: inclusive, restoreCommand: restoreCommand, now: Date())
            }
            if dryRun { return (try makePlan(), nil) }
            let plan = try RestoreOperation.check(catalog: catalog, options: options, plan: makePlan)
            var narrowed = lease
            try narrowed.narrow(to: plan, repo: repo)
            let r = try RestoreOperation.run(
                repo: repo, pipeline: ctx.makePipeline(), catalog: catalog, plan: plan,
                options: options, clock: SystemClock(), onTotal: { progress.setTotal($0) },
                onBytes: { progress.bytes($0) })
            RestoreOperation.warmWALSpool(
                repo: repo, pipeline: ctx.makePipeline(), catalog: catalog, plan: plan,
                targetDirectory: options.targetDirectory, parallelism: options.parallelism,
                limit: ctx.config.limits.prefetch)
            return (plan, r)
        }
    }

    /// The plan and the result, for a person.
    func printSummary(_ plan: RecoveryPlan, _ result: RestoreOperation.Result?, archiving: ArchiveDecision) {
        Output.line(
            "\(dryRun ? "would restore" : "restored") backup \(plan.backupId) for target \(plan.target) on timeline \(plan.timeline)"
        )
        if plan.chain.count > 1 {
            Output.line("  from its chain of \(plan.chain.count) backups: \(plan.chain.joined(separator: " → "))")
        }
        let until =
            plan.lastNeededSegment.map { " through \($0)" }
            ?? (target == .latest ? " to the end of the archive" : " until the target is reached")
        Output.line(
            "  WAL needed from \(plan.firstSegment)\(until) (the archive has up to \(plan.lastAvailableSegment ?? "none") on this path)"
        )
        Output.line("  recoverable window: \(RecoveryPlanner.describe(plan.window))")
        Output.line(
            "  \(standby ? "standby" : "recovery") settings\(dryRun ? " to write" : " written to postgresql.auto.conf"):"
        )
        let settings =
            standby
            ? RestoreOperation.standbySettings(
                plan.settings, primaryConninfo: primaryConninfo, primarySlotName: primarySlotName)
            : plan.settings
        for s in settings {
            // A connection string may hold a password: only its other parts are shown.
            Output.line("    \(s.name) = '\(s.name == "primary_conninfo" ? Redaction.redact(s.value) : s.value)'")
        }
        Output.line(
            "  archiving \(archiving.mode == .off ? "off in the restored cluster" : "as configured in the backup"): \(archiving.why)"
        )
        if let r = result {
            Output.line(
                "  \(r.files) files, \(Units.formatBytes(r.bytes)) in \(Units.formatDuration(r.seconds)) into \(r.targetDirectory)"
            )
            if let d = r.delta {
                Output.line(
                    "  delta: \(d.filesCompared) files compared (\(Units.formatBytes(d.bytesCompared)) read), \(Units.formatBytes(d.bytesRewritten)) rewritten in \(d.filesRewritten) files, \(d.filesUnchanged) unchanged, \(d.filesRemoved) removed; "
                        + "\(d.bundlesFetched) bundle(s) fetched, \(d.bundlesSkipped) not fetched (their files were on disk)"
                        + (d.framesFetched > 0 ? ", \(d.framesFetched) frame(s) of large files fetched by range" : "")
                )
            }
            Output.line(
                "start PostgreSQL on \(r.targetDirectory) to replay WAL, e.g.: pg_ctl -D \(r.targetDirectory) start")
        }
    }
}

extension RestoreCommand {
    /// How long a restore's lease lasts without renewal (`wal-fetch` renews it while PostgreSQL replays).
    static let leaseTTL: Double = 24 * 3600

    /// Whether the restored cluster archives, and why.
    struct ArchiveDecision {
        var mode: ArchiveMode
        var why: String

        /// Archiving stays on only for a restore into production's own data directory (`cluster.data_directory`,
        /// else what the server reports): a copy anywhere else must not archive into production's repository.
        static func forTarget(_ target: String, ctx: AppContext) -> ArchiveDecision {
            let configured = ctx.config.cluster.dataDirectory
            let production =
                configured
                ?? (try? ctx.connect(overrides: ["connect_timeout": "3"]))
                .flatMap { try? $0.scalar("SELECT current_setting('data_directory')") }
            guard let production else {
                return ArchiveDecision(
                    mode: .off,
                    why:
                        "cluster.data_directory is not set and the server could not be asked, so this may be a copy beside production; pass --archive-mode preserve if it replaces production (runbooks/side-restore.md)"
                )
            }
            let same =
                URL(fileURLWithPath: target).standardizedFileURL.resolvingSymlinksInPath().path
                == URL(fileURLWithPath: production).standardizedFileURL.resolvingSymlinksInPath().path
            return same
                ? ArchiveDecision(
                    mode: .preserve,
                    why: "\(target) is production's data directory, so the restored cluster archives as production")
                : ArchiveDecision(
                    mode: .off,
                    why:
                        "\(target) is not production's data directory (\(production)): a side copy must not archive into production's repository; pass --archive-mode preserve if it replaces production (runbooks/side-restore.md)"
                )
        }
    }

    func runLogical(_ ctx: AppContext, backup: String, database: String, into: String) async throws {
        var options = LogicalRestoreOperation.Options(backupId: backup, database: database, into: into)
        options.globals = globals
        options.jobs = jobs ?? ctx.config.limits.parallelism
        options.force = force
        options.noOwner = noOwner
        if let tempDir { options.tempDirectory = tempDir }
        let repo = try ctx.makeRepository()
        let catalog = try await Blocking.run { try Catalog.load(from: repo) }
        let r = try await LogicalRestoreOperation.run(
            repo: repo, pipeline: ctx.makePipeline(), catalog: catalog,
            conninfo: ctx.config.cluster.connection, tools: ctx.tools,
            clock: SystemClock(), options: options)
        if json { return try Output.json(r) }
        Output.line(
            "restored database \"\(r.database)\" of backup \(r.backup) into \"\(r.into)\"\(r.created ? " (created)" : ""): \(Units.formatBytes(r.bytes)) dump in \(Units.formatDuration(r.seconds))"
        )
        if !r.globalsErrors.isEmpty {
            Output.line(
                "  roles and tablespaces applied with \(r.globalsErrors.count) error(s) (usually roles that already exist):"
            )
            for e in r.globalsErrors.prefix(5) { Output.line("    \(e)") }
        }
    }
}

/// Parses user-supplied times, keeping microseconds. Without a zone, the time is local (TZ).
enum TimeParser {
    static func parse(_ text: String) -> Date? {
        var t = text.trimmingCharacters(in: .whitespaces)
        // DateFormatter keeps only milliseconds: take the fraction apart and add it back.
        var fraction = 0.0
        if let r = t.range(of: #"\.[0-9]{1,9}"#, options: .regularExpression) {
            fraction = Double("0" + t[r]) ?? 0
            t.removeSubrange(r)
        }
        let withZone = [
            "yyyy-MM-dd HH:mm:ssXXXXX", "yyyy-MM-dd'T'HH:mm:ssXXXXX", "yyyy-MM-dd HH:mm:ssX",
            "yyyy-MM-dd'T'HH:mm:ssX", "yyyy-MM-dd HH:mm:ss XXXXX"
        ]
        let local = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm"]
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        for fmt in withZone {
            f.dateFormat = fmt
            if let d = f.date(from: t) { return d.addingTimeInterval(fraction) }
        }
        f.timeZone = TimeZone.current
        for fmt in local {
            f.dateFormat = fmt
            if let d = f.date(from: t) { return d.addingTimeInterval(fraction) }
        }
        return nil
    }
}

/// Quoting for commands that PostgreSQL runs through the shell.
enum ShellQuote {
    static func quote(_ s: String) -> String {
        if !s.isEmpty && s.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+=:,@".contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension RecoveryTargetAction: ExpressibleByArgument {}
