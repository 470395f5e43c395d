import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Dispatch
import Foundation

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every object, manifest and the WAL archive's continuity, without starting PostgreSQL.",
        discussion: """
            Reads every object of every committed backup and every WAL object and checks it against its manifest or its \
            own trailer; names every missing WAL segment on each timeline; lists objects no manifest references. \
            Objects verified by an earlier run (same size and modification time) are skipped unless --full. Every \
            problem is reported, then the command fails once. With several repositories, each is verified in turn \
            under its own lock, its section under a heading `repository NAME (location)`; --json then prints \
            {"repositories": [{"name", "location", "result", "error"}]}.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Read every object again, ignoring what earlier runs verified.") var full = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false
    @OptionGroup var lock: JobLockOptions

    func run() async throws {
        let ctx = try AppContext.load(global)
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in try await lock.withLock("verify", repo: m.repo) { try await verify(ctx, m.repo) } },
            encode: { $0 }, text: Self.print, verdict: { r, m in try Self.judge(r, location: m.repo.location) })
    }

    /// Verifies one repository (under its lock) and records the run in it.
    func verify(_ ctx: AppContext, _ repo: any Repository) async throws -> VerifyOperation.Result {
        let full = self.full
        let started = Date()
        let result: VerifyOperation.Result
        let progress = ProgressLine(label: "verify", global: global, json: json)
        defer { progress.done() }
        do {
            result = try await Blocking.run {
                try VerifyOperation.run(
                    repo: repo, pipeline: ctx.makePipeline(), full: full,
                    parallelism: ctx.config.limits.parallelism, clock: SystemClock(), progress: progress.callbacks)
            }
        } catch {
            await JobRecord.record(repo, job: "verify", started: started, error: error)
            throw error
        }
        progress.done()
        await JobRecord.record(
            repo, job: "verify", started: started, bytes: result.bytesRead,
            error: result.ok ? nil : CairnError(.dataCorrupt, "\(result.problems.count) problem(s)"))
        return result
    }

    /// One repository's result as text.
    static func print(_ result: VerifyOperation.Result) {
        Output.line(
            "verified \(result.backupsChecked) backup(s) and \(result.walSegments) WAL segment(s): read \(result.objectsChecked) object(s) (\(Units.formatBytes(result.bytesRead))), skipped \(result.objectsSkipped) verified before\(result.full ? "" : " (--full reads everything)")"
        )
        for p in result.problems {
            Output.line("\(p.severity == .error ? "ERROR" : "warning"): \(p.kind) \(p.subject): \(p.detail)")
        }
        Output.line(
            result.ok
                ? "repository OK"
                : "repository has \(result.problems.filter { $0.severity == .error }.count) problem(s)")
    }

    /// Fails when the repository has problems (they are listed above, or in the JSON): the error line says what
    /// kind and how many.
    static func judge(_ result: VerifyOperation.Result, location: String) throws {
        guard !result.ok else { return }
        let errors = result.problems.filter { $0.severity == .error }
        let damaged = errors.filter { $0.kind != "missing-wal" }
        if !damaged.isEmpty {
            throw CairnError(
                .dataCorrupt,
                "repository \(location) has \(damaged.count) damaged or missing object(s)\(errors.count > damaged.count ? " and gaps in the WAL archive" : "")",
                hint: "each is listed above; see runbooks/repository-damaged.md")
        }
        throw CairnError(
            .walMissing,
            "the WAL archive in \(location) has \(errors.count) gap(s): \(result.missingSegments.count) segment(s) missing",
            hint: "each gap is listed above; see runbooks/wal-archiving.md")
    }
}

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Prove that a backup restores: restore into a scratch cluster, replay WAL, check, record the RTO.",
        discussion: """
            Picks a backup (--backup, else the drill policy: latest or random in the window) and a target (--target-time, \
            else a random point the backup can reach, its end, or the end of the archive), restores into a scratch folder, \
            starts a temporary PostgreSQL (archiving off, its own port, trust only on its private socket), replays WAL \
            from the repository, then runs pg_verifybackup, pg_amcheck, reads every table and runs the policy's SQL \
            assertions. The record (verdict, checks, RTO by phase) goes to drills/<id>.json; the scratch cluster is \
            removed, also on failure or interrupt. Exit 0 when the drill passes, 65 when it fails.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Drill this backup.") var backup: String?
    @Option(name: .long, help: "Recover to this time (like restore --target-time).") var targetTime: String?
    @Option(name: .long, help: "A drill policy file instead of the one in cairn.yaml.") var policy: String?
    @Flag(name: .long, help: "Print the record as JSON.") var json = false
    @OptionGroup var lock: JobLockOptions

    func validate() throws {
        if let t = targetTime, TimeParser.parse(t) == nil {
            throw ValidationError("--target-time \"\(t)\" is not a time")
        }
    }

    func run() async throws {
        var ctx = try AppContext.load(global)
        if ServerUser.isRoot { ctx = try runAsClusterOwner(ctx) }
        let drilled = try await ctx.reachableRepository("drilling")
        try await lock.withLock("drill", repo: drilled.repo) { try await locked(ctx, drilled: drilled) }
    }

    /// PostgreSQL's server programs refuse root: started as root, the drill switches to the cluster's owner before
    /// any work, so the scratch folder, the restored files and whatever it writes belong to that user. The
    /// configuration is then read again as that user, so what the scratch server's restore_command (always run as
    /// that user) cannot read fails here, not after the restore.
    func runAsClusterOwner(_ ctx: AppContext) throws -> AppContext {
        let user = try ServerUser.resolve(dataDirectory: ctx.config.cluster.dataDirectory)
        try ServerUser.become(user)
        ctx.logger.notice(
            "cairn was started as root: the drill runs as \(user.name) (uid \(user.uid)), the cluster's owner")
        return try AppContext.load(global)
    }

    func locked(_ ctx: AppContext, drilled: RepositorySet.Member) async throws {
        let policy = try self.policy.map(PolicyLoader.drills(file:)) ?? ctx.config.drills
        let exe = ShellQuote.quote(Spawn.currentExecutable)
        // The WAL comes from the drilled repository too (never from another one past a damaged segment).
        let only = ctx.config.repositories.count > 1 ? " --repo \(ShellQuote.quote(drilled.name))" : ""
        var options = DrillOperation.Options(
            restoreCommand: "\(exe) --config \(ShellQuote.quote(ctx.absoluteConfigPath))\(only) wal-fetch %f %p",
            user: (try? Conninfo(ctx.config.cluster.connection).options["user"] ?? nil) ?? NSUserName())
        options.backupId = backup
        options.targetTime = targetTime.flatMap(TimeParser.parse)
        options.parallelism = ctx.config.limits.parallelism
        options.prefetch = ctx.config.limits.prefetch
        options.recoveryWindow = ctx.config.retention.recoveryWindow
        let interrupt = Interruption.onInterrupt("the scratch cluster was stopped and removed") {
            let folders = ScratchCleanup.cleanAll()
            // Restore threads stop at their next file, but may have written meanwhile: sweep until it is gone.
            for _ in 0..<10 where folders.contains(where: { FileManager.default.fileExists(atPath: $0) }) {
                usleep(200_000)
                for f in folders { try? FileManager.default.removeItem(atPath: f) }
            }
        }
        defer { Interruption.remove(interrupt) }
        let repo = drilled.repo
        let started = Date()
        let progress = ProgressLine(label: "drill", global: global, json: json)
        options.progress = progress.callbacks
        defer { progress.done() }
        let record: DrillRecord
        do {
            // The lease keeps expire off everything while the drill restores and replays.
            record = try await Lease.holding(.drill, repo: repo, ttl: Double(lock.lockTtl), fence: true) {
                [options] _ in
                let catalog = try await Blocking.run { try Catalog.load(from: repo) }
                return try await DrillOperation.run(
                    repo: repo, pipeline: ctx.makePipeline(), catalog: catalog, policy: policy,
                    options: options, tools: ctx.tools, clock: SystemClock())
            }
        } catch {
            await JobRecord.record(repo, job: "drill", started: started, error: error)
            throw error
        }
        progress.done()
        await JobRecord.record(
            repo, job: "drill", started: started, subject: record.id,
            error: record.verdict == .pass
                ? nil : CairnError(.restoreFailed, "drill failed: \(record.failedCheck ?? "?")"))
        try report(record)
    }

    /// Prints the drill's record (JSON or its checks and RTO) and fails the command when the drill failed.
    private func report(_ record: DrillRecord) throws {
        if json {
            try Output.json(record)
        } else {
            Output.line(
                "drill \(record.id) of backup \(record.backupId) (\(record.backupKind)), target \(record.target): \(record.verdict == .pass ? "PASS" : "FAIL")"
            )
            for c in record.checks {
                Output.line("  \(c.ok ? "ok  " : "FAIL") \(c.name): \(c.detail) (\(Units.formatDuration(c.seconds)))")
            }
            let r = record.rto
            let mode = record.restoreMode.map { " (\($0))" } ?? ""
            Output.line(
                "  RTO \(Units.formatDuration(r.totalSeconds)): restore \(Units.formatDuration(r.restoreSeconds))\(mode), WAL replay \(Units.formatDuration(r.replaySeconds)), checks \(Units.formatDuration(r.checksSeconds))"
            )
        }
        if record.verdict == .fail {
            // The verdict on stderr too, so that a failed drill says why also with --json (stdout is the record).
            let failed = record.checks.first { !$0.ok }
            Output.stderr(
                "cairn: drill \(record.id) of backup \(record.backupId) FAILED at \(failed?.name ?? record.failedCheck ?? "?"): \(failed?.detail ?? "-") (see runbooks/drill-failed.md)"
            )
            throw CommandExit(code: ErrorCode.dataCorrupt.exitCode)
        }
    }
}
