import ArgumentParser
import CairnBase
import CairnCore
import CairnStorage
import Foundation

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a backup into the repository.",
        discussion: """
            A full (physical) backup reads the data directory between pg_backup_start and pg_backup_stop, \
            limits.parallelism files at a time (or, with cluster.backup_method: stream or from another host, streams \
            a base backup over a replication connection), keeps a PostgreSQL backup_manifest, waits until the WAL the backup needs is archived, and writes manifest.json \
            last: an interrupted backup leaves nothing that list or restore would take for a backup. With several \
            repositories, the backup is taken into the first one that is reachable and then copied into each of the \
            others (as `cairn copy` does), committed in each by its own manifest; when one cannot take it, the \
            command says where the backup is committed and exits with repo.behind (75).
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
        let repos = try ctx.makeRepositories()
        let home = try await Blocking.run {
            try repos.firstSucceeding("taking the backup") { m in
                _ = try RepositoryInfo.require(from: m.repo)
                return m
            }
        }
        let repo = home.repo
        // One physical backup at a time, whatever its type. The lock is confirmed before the commit, so on a store
        // that needs a settle time before reading it back, that time overlaps the backup.
        let id = try await lock.withLockConfirmedLater(type == .logical ? "backup-logical" : "backup-full", repo: repo)
        {
            jobLock in
            // The lease keeps expire off this backup's objects however long it waits for WAL (and off the chain
            // an incremental builds on).
            try await Lease.holding(.backup, repo: repo, ttl: Double(lock.lockTtl), fence: false) { lease in
                if type == .logical {
                    try await Blocking.run { try jobLock.confirm() }
                    return try await runLogical(ctx, repo: repo)
                }
                return try await runPhysical(ctx, repo: repo, lease: lease, jobLock: jobLock)
            }
        }
        try await replicate(id, from: home, repos: repos, parallelism: ctx.config.limits.parallelism)
    }

    /// Copies the backup just committed in `home` into every other repository (with the WAL and timeline records
    /// they lack); when one cannot take it, says where it is committed and throws `repo.behind`.
    func replicate(_ id: String, from home: RepositorySet.Member, repos: RepositorySet, parallelism: Int) async throws {
        let others = repos.members.filter { $0.name != home.name }
        guard !others.isEmpty else { return }
        var failed: [String] = []
        for to in others {
            do {
                let r = try await Blocking.run {
                    try CopyOperation.run(
                        from: home, to: to, options: .init(backups: [id], parallelism: parallelism))
                }
                if !json {
                    Output.line(
                        "  copied to repository \(to.name): \(Units.formatBytes(r.bytes)) (\(r.walFiles) WAL files it lacked)"
                    )
                }
            } catch {
                failed.append("\(to.name): \(describeError(error).message)")
            }
        }
        guard failed.isEmpty else {
            throw CairnError(
                .repoBehind,
                "backup \(id) is committed in repository \(home.name) but not in \(failed.joined(separator: "; "))",
                hint:
                    "once the repository is reachable again, run `cairn copy` to catch it up (runbooks/wal-archiving.md, Several repositories)"
            )
        }
    }

    func runPhysical(
        _ ctx: AppContext, repo: any Repository, lease: Lease, jobLock: RepositoryLock
    ) async throws
        -> String
    {
        var options = BackupOperation.Options()
        options.beforeCommit = { try jobLock.confirm() }
        options.kind = BackupManifest.Kind(rawValue: type.rawValue) ?? .full
        options.onParent = { parent in
            var claimed = lease
            claimed.backup = parent
            try claimed.save(to: repo)
            try Lease.awaitNoExpire(repo: repo, clock: SystemClock())
        }
        options.fastCheckpoint = !spreadCheckpoint
        options.walTimeout = Units.parseDuration(walTimeout) ?? 600
        options.bundleSize = ctx.config.limits.bundleSize
        options.method = ctx.config.cluster.backupMethod
        options.parallelism = ctx.config.limits.parallelism
        let progress = ProgressLine(label: "backup", global: global, json: json)
        let opts = options
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
        if json {
            try Output.json(BackupSummary(manifest))
            return manifest.id
        }
        let what =
            manifest.parent.map { "\(manifest.kind.rawValue) backup \(manifest.id) (on \($0))" }
            ?? "backup \(manifest.id)"
        Output.line(
            "\(what) committed: \(Units.formatBytes(manifest.size)) stored as \(Units.formatBytes(manifest.storedSize)) in \(Units.formatDuration(manifest.durationSeconds))"
        )
        Output.line(
            "  WAL \(manifest.start.wal) … \(manifest.stop.wal) (LSN \(manifest.start.lsn) … \(manifest.stop.lsn), timeline \(manifest.stop.timeline)), consistent at \(Timestamp.format(manifest.stop.time))"
        )
        return manifest.id
    }
}

extension BackupCommand {
    func runLogical(_ ctx: AppContext, repo: any Repository) async throws -> String {
        var options = LogicalBackupOperation.Options()
        options.databases = database
        let progress = ProgressLine(label: "logical backup", global: global, json: json)
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
        if json {
            try Output.json(BackupSummary(manifest))
            return manifest.id
        }
        Output.line(
            "logical backup \(manifest.id) committed: \(manifest.databases?.count ?? 0) database(s), \(Units.formatBytes(manifest.size)) stored as \(Units.formatBytes(manifest.storedSize)) in \(Units.formatDuration(manifest.durationSeconds))"
        )
        for d in manifest.databases ?? [] {
            Output.line(
                "  \(d.name): dump \(Units.formatBytes(d.object.digest.size)) → \(Units.formatBytes(d.object.digest.storedSize)), snapshot at \(Timestamp.format(d.snapshotTime))"
            )
        }
        return manifest.id
    }
}
