import ArgumentParser
import CairnBase
import CairnCore
import Foundation

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a backup into the repository.",
        discussion: """
            A full (physical) backup reads the data directory between pg_backup_start and pg_backup_stop, \
            limits.parallelism files at a time (or, with cluster.backup_method: stream or from another host, streams \
            a base backup over a replication connection), keeps a PostgreSQL backup_manifest, waits until the WAL the backup needs is archived, and writes manifest.json \
            last: an interrupted backup leaves nothing that list or restore would take for a backup.
            """)

    enum Kind: String, ExpressibleByArgument, CaseIterable { case full, incr, diff, logical }

    @OptionGroup var global: GlobalOptions
    @Option(
        name: .long,
        help:
            "Backup type: full (physical), incr (blocks changed since the newest backup), diff (since the newest full) or logical (pg_dump of each database)."
    )
    var type: Kind = .full
    @Option(name: .long, help: "A database for a logical backup (repeatable; default: all).") var database: [String] =
        []
    @Option(name: .long, help: "How long to wait for the backup's WAL to be archived (e.g. 10m).") var walTimeout:
        String = "10m"
    @Flag(name: .long, help: "Let the starting checkpoint be spread out instead of immediate.") var spreadCheckpoint =
        false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false
    @OptionGroup var lock: JobLockOptions

    func validate() throws {
        guard Units.parseDuration(walTimeout) != nil else {
            throw ValidationError("--wal-timeout must be a duration such as 10m")
        }
        if type != .logical && !database.isEmpty { throw ValidationError("--database applies to --type logical only") }
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        let repo = try ctx.makeRepository()
        // One physical backup at a time, whatever its type.
        try await lock.withLock(type == .logical ? "backup-logical" : "backup-full", repo: repo) {
            // The lease keeps expire off this backup's objects however long it waits for WAL (and off the chain
            // an incremental builds on).
            try await Lease.holding(.backup, repo: repo, ttl: Double(lock.lockTtl), fence: false) { lease in
                if type == .logical { try await runLogical(ctx) } else { try await runPhysical(ctx, lease: lease) }
            }
        }
    }

    func runPhysical(_ ctx: AppContext, lease: Lease) async throws {
        var options = BackupOperation.Options()
        options.kind = BackupManifest.Kind(rawValue: type.rawValue) ?? .full
        options.onParent = { parent in
            var claimed = lease
            claimed.backup = parent
            try claimed.save(to: try ctx.makeRepository())
            try Lease.awaitNoExpire(repo: try ctx.makeRepository(), clock: SystemClock())
        }
        options.fastCheckpoint = !spreadCheckpoint
        options.walTimeout = Units.parseDuration(walTimeout) ?? 600
        options.bundleSize = ctx.config.limits.bundleSize
        options.method = ctx.config.cluster.backupMethod
        options.parallelism = ctx.config.limits.parallelism
        let progress = ProgressLine(label: "backup", global: global, json: json)
        let opts = options
        let repo = try ctx.makeRepository()
        let started = Date()
        let manifest: BackupManifest
        do {
            manifest = try await Blocking.run {
                // The configured cluster is production: its timeline is production's (refused if recorded as a copy's).
                if let tli = try TimelineWitness.currentTimeline(try ctx.connect()) {
                    try TimelineWitness.confirmProduction(tli, repo: repo, clock: SystemClock(), decidedBy: "backup")
                }
                return try BackupOperation.run(
                    repo: repo, pipeline: ctx.makePipeline(), conninfo: ctx.config.cluster.connection,
                    clock: SystemClock(), options: opts, progress: progress.callbacks)
            }
        } catch {
            progress.done()
            await JobRecord.record(repo, job: "backup-\(type.rawValue)", started: started, error: error)
            throw error
        }
        progress.done()
        await JobRecord.record(
            repo, job: "backup-\(type.rawValue)", started: started, subject: manifest.id, bytes: manifest.storedSize)
        if json { return try Output.json(BackupSummary(manifest)) }
        let what =
            manifest.parent.map { "\(manifest.kind.rawValue) backup \(manifest.id) (on \($0))" }
            ?? "backup \(manifest.id)"
        Output.line(
            "\(what) committed: \(Units.formatBytes(manifest.size)) stored as \(Units.formatBytes(manifest.storedSize)) in \(Units.formatDuration(manifest.durationSeconds))"
        )
        Output.line(
            "  WAL \(manifest.start.wal) … \(manifest.stop.wal) (LSN \(manifest.start.lsn) … \(manifest.stop.lsn), timeline \(manifest.stop.timeline)), consistent at \(Timestamp.format(manifest.stop.time))"
        )
    }
}

extension BackupCommand {
    func runLogical(_ ctx: AppContext) async throws {
        var options = LogicalBackupOperation.Options()
        options.databases = database
        let progress = ProgressLine(label: "logical backup", global: global, json: json)
        let repo = try ctx.makeRepository()
        let started = Date()
        let manifest: BackupManifest
        do {
            manifest = try await LogicalBackupOperation.run(
                repo: repo, pipeline: ctx.makePipeline(), conninfo: ctx.config.cluster.connection,
                tools: ctx.tools, clock: SystemClock(), options: options, progress: progress.callbacks)
        } catch {
            progress.done()
            await JobRecord.record(repo, job: "backup-logical", started: started, error: error)
            throw error
        }
        progress.done()
        await JobRecord.record(
            repo, job: "backup-logical", started: started, subject: manifest.id, bytes: manifest.storedSize)
        if json { return try Output.json(BackupSummary(manifest)) }
        Output.line(
            "logical backup \(manifest.id) committed: \(manifest.databases?.count ?? 0) database(s), \(Units.formatBytes(manifest.size)) stored as \(Units.formatBytes(manifest.storedSize)) in \(Units.formatDuration(manifest.durationSeconds))"
        )
        for d in manifest.databases ?? [] {
            Output.line(
                "  \(d.name): dump \(Units.formatBytes(d.object.digest.size)) → \(Units.formatBytes(d.object.digest.storedSize)), snapshot at \(Timestamp.format(d.snapshotTime))"
            )
        }
    }
}
