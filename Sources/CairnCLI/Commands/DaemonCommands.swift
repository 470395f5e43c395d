import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The lock every job command takes, so overlapping runs (cron, daemons on several hosts) are refused.
struct JobLockOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "How long the job's repository lock lasts if the job dies without releasing it.",
            visibility: .hidden))
    var lockTtl: Int = 6 * 3600

    /// Takes `locks/<job>.json`, runs `body`, releases the lock (see
    /// ``RepositoryLock/holding(_:repo:ttl:confirmLater:_:)``).
    func withLock<T>(_ job: String, repo: any Repository, _ body: () async throws -> T) async throws -> T {
        try await RepositoryLock.holding(job, repo: repo, ttl: Double(lockTtl)) { _ in try await body() }
    }

    /// As ``withLock(_:repo:_:)``, but `body` starts once the lock object is written and must confirm the lock
    /// it is given before it commits anything.
    func withLockConfirmedLater<T>(
        _ job: String, repo: any Repository, _ body: (RepositoryLock) async throws -> T
    ) async throws -> T {
        try await RepositoryLock.holding(job, repo: repo, ttl: Double(lockTtl), confirmLater: true, body)
    }
}

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the schedule policy's jobs on time and serve Prometheus metrics.",
        discussion: """
            Jobs (backup-full, backup-incr, backup-diff, backup-logical, expire, verify, drill, report) run on their cron expressions in their time \
            zones, one run of a kind at a time across hosts (a lock in the repository), each stopped if it exceeds its \
            max_run_time. Runs missed while the daemon was down are run once or skipped and reported, per policy. \
            /metrics (Prometheus text format) and /healthz are served on metrics.listen. SIGTERM/SIGINT stop it \
            gracefully: running jobs are asked to stop, and an interrupted backup never looks committed.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The schedule policy file (default: schedule: in cairn.yaml).") var schedule: String?
    @Option(name: .long, help: "Serve metrics on HOST:PORT (default: metrics.listen, 127.0.0.1:9187).") var listen:
        String?

    func run() async throws {
        let (ctx, policy) = try ScheduleCommand.policy(global, schedule)
        let address = listen ?? ctx.config.metricsListen
        guard let (host, port) = MetricsAddress.parse(address) else {
            throw ValidationError("--listen must be HOST:PORT with an IPv4 address, e.g. 127.0.0.1:9187")
        }
        let repos = try ctx.makeRepositories()
        let repo = repos.primary.repo
        let now = Date()
        let history = try await Blocking.run {
            try JobRecord.load(month: JobRecord.month(now.addingTimeInterval(-32 * 86400)), from: repo)
                + JobRecord.load(month: JobRecord.month(now), from: repo)
        }
        let scheduler = Scheduler(
            policy: policy, configPath: ctx.absoluteConfigPath, executable: Spawn.currentExecutable,
            history: history, now: now)
        let dataDirectory = ctx.config.cluster.dataDirectory
        let metrics = MetricsServer(
            host: host, port: port,
            collect: {
                let snapshot =
                    (try? await Blocking.run {
                        try MetricsSnapshot.collect(repos: repos, dataDirectory: dataDirectory, now: Date())
                    })
                    ?? MetricsSnapshot()
                return MetricsRenderer.render(snapshot, daemon: scheduler.figures.withLock { $0 })
            }, healthy: { scheduler.healthy })
        // Services stop in reverse order: the scheduler first (it waits for its jobs), metrics stay up meanwhile.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: metrics), .init(service: scheduler)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "cairn.daemon")))
        try await group.run()
    }
}

struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the metrics (Prometheus text format), or write them for node_exporter's textfile collector.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Write to this file atomically (e.g. /var/lib/node_exporter/textfile/cairn.prom).")
    var textfile: String?

    func run() async throws {
        let ctx = try AppContext.load(global)
        let repos = try ctx.makeRepositories()
        let dataDirectory = ctx.config.cluster.dataDirectory
        let snapshot = try await Blocking.run {
            try MetricsSnapshot.collect(repos: repos, dataDirectory: dataDirectory, now: Date())
        }
        let text = MetricsRenderer.render(snapshot)
        guard let textfile else { return Output.line(text.hasSuffix("\n") ? String(text.dropLast()) : text) }
        let tmp = textfile + ".tmp-\(getpid())"
        do {
            try text.write(toFile: tmp, atomically: false, encoding: .utf8)
            guard rename(tmp, textfile) == 0 else { throw CairnError(.localIO, String(cString: strerror(errno))) }
        } catch {
            unlink(tmp)
            throw CairnError(
                .localIO, "cannot write \(textfile): \(describeError(error).message)",
                hint: "the folder must exist and be writable by the cairn user", cause: error)
        }
    }
}

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Show the schedule policy, or turn it into crontab lines.",
        subcommands: [Show.self, PrintCrontab.self], defaultSubcommand: Show.self)

    static func policy(_ global: GlobalOptions, _ file: String?) throws -> (AppContext, SchedulePolicy) {
        let ctx = try AppContext.load(global)
        guard let path = file ?? ctx.config.schedulePath else {
            throw CairnError(
                .configInvalid, "no schedule policy (the daemon and the crontab are built from one)",
                hint: "add `schedule: policies/schedule.yaml` to cairn.yaml or pass --schedule FILE")
        }
        return (ctx, try PolicyLoader.schedule(file: path))
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the jobs and their next runs.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "The schedule policy file.") var schedule: String?
        @Flag(name: .long, help: "Print the jobs as JSON.") var json = false

        struct Job: Encodable {
            var job, cron, timeZone, command: String
            var next: Date?
            var jitterSeconds, maxRunTimeSeconds: Double
            enum CodingKeys: String, CodingKey {
                case job, cron, command, next
                case timeZone = "time_zone", jitterSeconds = "jitter_seconds", maxRunTimeSeconds =
                    "max_run_time_seconds"
            }
        }

        func run() async throws {
            let (_, policy) = try ScheduleCommand.policy(global, schedule)
            let now = Date()
            let states = SchedulePlanner.plan(policy, lastConsidered: [:], now: now)
            if json {
                return try Output.json(
                    states.compactMap { s -> Job? in
                        guard let job = policy.jobs.first(where: { $0.name == s.job }) else { return nil }
                        return Job(
                            job: job.name, cron: job.cron.text, timeZone: job.timeZone.identifier,
                            command: job.arguments.joined(separator: " "),
                            next: s.next, jitterSeconds: job.jitter, maxRunTimeSeconds: job.maxRunTime)
                    })
            }
            for s in states {
                let job = policy.jobs.first { $0.name == s.job }!
                Output.line(
                    "\(job.name.padding(toLength: 15, withPad: " ", startingAt: 0)) \(job.cron.text) (\(job.timeZone.identifier)) next \(s.next.map(Timestamp.format) ?? "never")"
                )
            }
        }
    }

    struct PrintCrontab: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "print-crontab",
            abstract: "Print crontab lines for the schedule policy (for system cron instead of the daemon).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "The schedule policy file.") var schedule: String?

        func run() async throws {
            let (ctx, policy) = try ScheduleCommand.policy(global, schedule)
            Output.line(Crontab.render(policy, executable: Spawn.currentExecutable, config: ctx.absoluteConfigPath))
        }
    }
}

/// Crontab lines: each job under `timeout` (max_run_time), with its jitter as a random sleep, JSON logs on stderr,
/// and the same repository lock as the daemon, so overlapping runs are refused.
/// The schedule policy as crontab lines (for hosts that use system cron instead of `cairn daemon`).
enum Crontab {
    static func render(_ policy: SchedulePolicy, executable: String, config: String) -> String {
        let base = "\(ShellQuote.quote(executable)) --config \(ShellQuote.quote(config))"
        var lines = [
            "# cairn schedule: generated by `cairn schedule print-crontab`; install with `crontab -u postgres FILE`",
            "# (create /var/log/cairn, writable by that user, first)",
            "SHELL=/bin/bash"
        ]
        for job in policy.jobs {
            lines.append("CRON_TZ=\(job.timeZone.identifier == "GMT" ? "UTC" : job.timeZone.identifier)")
            let sleep = job.jitter > 0 ? "sleep $((RANDOM % \(Int(job.jitter)))); " : ""
            let cmd =
                "\(base) \(job.arguments.joined(separator: " ")) --lock-ttl \(Int(job.maxRunTime + 300)) --log-format json"
            // cron turns an unescaped % into a newline.
            let line =
                "\(sleep)timeout --signal=TERM --kill-after=30 \(Int(job.maxRunTime)) \(cmd) >/dev/null 2>>/var/log/cairn/\(job.name).log"
            lines.append("\(job.cron.text) \(line.replacingOccurrences(of: "%", with: "\\%"))")
        }
        lines.append("# metrics for node_exporter's textfile collector:")
        lines.append(
            "*/5 * * * * \(base) metrics --textfile /var/lib/node_exporter/textfile/cairn.prom 2>>/var/log/cairn/metrics.log"
        )
        return lines.joined(separator: "\n")
    }
}
