import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation

/// `cairn doctor`: a production-readiness review of the cluster's archiving, the repository, the backups, the
/// drills and the recovery window, each finding with its fix. Exit 0 (ok), 1 (a warning) or 2 (a critical finding).
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Review the cluster and repository for production readiness; every finding comes with its fix.",
        discussion: """
            Checks wal_level, archive_mode, archive_command (cairn wal-push), archive_timeout (the RPO of a quiet \
            database), archiver failures and backlog, the repository (reachable, writable, TLS, off-site, clock skew), \
            the newest full backup and passing drill, the retention policy and whether the recoverable window covers it. \
            Exit code: 0 when nothing needs doing, 1 for warnings, 2 for critical findings. With several repositories, \
            the cluster is reviewed once (under a heading `cluster`) and each repository on its own (under `repository \
            NAME (location)`), each but the primary also for what it lacks of the primary's backups and WAL \
            (repository_lag, fixed by cairn copy --to NAME); a passing drill in any repository counts for all. --json \
            then prints {"worst", "findings": [the cluster's], "repositories": [{"name", "location", "result": \
            {"worst", "findings"}}]}.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the findings as JSON.") var json = false

    struct Report: Encodable {
        var worst: Doctor.Severity
        var findings: [Doctor.Finding]
    }

    /// The JSON with several repositories: the worst of all, the cluster's findings, then each repository's.
    struct SeveralReport: Encodable {
        struct Entry: Encodable {
            var name: String
            var location: String
            var result: Report
        }
        var worst: Doctor.Severity
        var findings: [Doctor.Finding]
        var repositories: [Entry]
    }

    /// One repository's findings.
    struct Section {
        var name: String
        var location: String
        var findings: [Doctor.Finding]
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        let gathered = try await Self.gather(ctx, base: Self.baseFacts(ctx))
        let now = Date()
        func sorted(_ f: [Doctor.Finding]) -> [Doctor.Finding] { f.sorted { $0.severity > $1.severity } }
        if gathered.count == 1 {
            return try present(sorted(Doctor.evaluate(gathered[0].facts, now: now)), sections: [])
        }
        let sections = gathered.map {
            Section(
                name: $0.name, location: $0.facts.repositoryLocation,
                findings: sorted(Doctor.evaluate($0.facts, now: now, parts: [.repository])))
        }
        try present(sorted(Doctor.evaluate(gathered[0].facts, now: now, parts: [.cluster])), sections: sections)
    }

    /// The facts every repository shares: the policies and the command to suggest.
    static func baseFacts(_ ctx: AppContext) -> DoctorFacts {
        let config = ctx.config
        var facts = DoctorFacts()
        facts.recoveryWindow = config.retention.recoveryWindow
        facts.retentionSource = config.retentionSource
        facts.walPushCommand = "\(Spawn.currentExecutable) --config \(ctx.absoluteConfigPath) wal-push %p"
        if let path = config.schedulePath, let policy = try? PolicyLoader.schedule(file: path),
            let job = policy.jobs.first(where: { $0.name == "backup-full" }),
            let a = job.cron.next(after: Date(), in: job.timeZone), let b = job.cron.next(after: a, in: job.timeZone)
        {
            facts.expectedFullInterval = b.timeIntervalSince(a)
        }
        return facts
    }

    /// The cluster's facts (gathered once), then each repository's on top of them; with several repositories the
    /// drills of all count for each, and each but the primary is compared with the primary.
    static func gather(_ ctx: AppContext, base: DoctorFacts) async throws -> [(name: String, facts: DoctorFacts)] {
        let config = ctx.config
        let cluster = try await Blocking.run { [base] in
            var f = base
            f.gatherCluster(
                conninfo: config.cluster.connection, dataDirectory: config.cluster.dataDirectory, clock: SystemClock())
            return f
        }
        var all: [(name: String, facts: DoctorFacts, catalog: Catalog?)] = []
        for named in config.repositories {
            let (facts, catalog) = try await gatherRepository(ctx, named, cluster: cluster)
            all.append((named.name, facts, catalog))
        }
        guard all.count > 1 else { return all.map { ($0.name, $0.facts) } }
        let shared = DoctorFacts.sharingDrills(all.map(\.facts))
        return all.enumerated().map { i, r in
            var f = shared[i]
            if i > 0, let primary = all[0].catalog, let mine = r.catalog {
                f.lag = .init(name: r.name, primary: all[0].name, lag: RepositoryLag.of(mine, behind: primary))
            }
            return (r.name, f)
        }
    }

    /// One repository's facts: reachable, writable, TLS, Object Lock as configured, its catalog and drills.
    static func gatherRepository(
        _ ctx: AppContext, _ named: Configuration.NamedRepository, cluster: DoctorFacts
    ) async throws -> (DoctorFacts, Catalog?) {
        let config = ctx.config
        var endpoint: URL?
        var lock: ObjectLockFacts?
        if case .s3(let s3) = named.kind {
            endpoint = s3.endpoint
            lock = ObjectLockFacts(
                mode: s3.objectLock?.mode.rawValue,
                period: s3.objectLock.map { ObjectLockPolicy.period(retention: config.retention, margin: $0.margin) }
                    ?? 0,
                testShortPeriods: s3.objectLock?.testShortPeriods ?? false)
        }
        let repo = try? ctx.makeRepository(named)
        let driver = try? ctx.makeDriver(named) as? S3Repository
        return try await Blocking.run { [endpoint, lock] in
            var f = cluster
            if let driver, let lock { f.gatherObjectLock(driver, lock) }
            guard let repo else {
                f.repositoryError = "the repository configuration cannot be used"
                return (f, nil)
            }
            let catalog = f.gatherRepository(repo, endpoint: endpoint, clock: SystemClock())
            return (f, catalog)
        }
    }

    /// Prints the findings (with several repositories, the cluster's, then each repository's under its heading)
    /// and exits with the worst one's code.
    func present(_ findings: [Doctor.Finding], sections: [Section]) throws {
        let worst = Doctor.worst(findings + sections.flatMap(\.findings))
        if json {
            if sections.isEmpty {
                try Output.json(Report(worst: worst, findings: findings))
            } else {
                try Output.json(
                    SeveralReport(
                        worst: worst, findings: findings,
                        repositories: sections.map {
                            .init(
                                name: $0.name, location: $0.location,
                                result: Report(worst: Doctor.worst($0.findings), findings: $0.findings))
                        }))
            }
        } else {
            let everything = findings + sections.flatMap(\.findings)
            let counts = Doctor.Severity.allCases.reversed().compactMap { s -> String? in
                let n = everything.filter { $0.severity == s }.count
                return n == 0 ? nil : "\(n) \(s.rawValue)"
            }
            Output.line("cairn doctor: \(counts.joined(separator: ", "))")
            if !sections.isEmpty { Output.line("cluster") }
            Self.printFindings(findings)
            for s in sections {
                Output.line("repository \(s.name) (\(s.location))")
                Self.printFindings(s.findings)
            }
        }
        if worst.exitCode != 0 { throw CommandExit(code: worst.exitCode) }
    }

    /// Findings, one a line, each with its fix.
    static func printFindings(_ findings: [Doctor.Finding]) {
        for f in findings {
            Output.line(
                "\(f.severity.rawValue.uppercased().padding(toLength: 9, withPad: " ", startingAt: 0)) \(f.check): \(f.explanation)"
            )
            if let fix = f.fix, f.severity > .ok { Output.line("          fix: \(fix)") }
        }
    }
}
