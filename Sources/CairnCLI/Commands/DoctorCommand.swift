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
            Exit code: 0 when nothing needs doing, 1 for warnings, 2 for critical findings.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the findings as JSON.") var json = false

    struct Report: Encodable {
        var worst: Doctor.Severity
        var findings: [Doctor.Finding]
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
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
        var endpoint: URL?
        var lock: ObjectLockFacts?
        if case .s3(let s3) = config.repository {
            endpoint = s3.endpoint
            lock = ObjectLockFacts(
                mode: s3.objectLock?.mode.rawValue,
                period: s3.objectLock.map { ObjectLockPolicy.period(retention: config.retention, margin: $0.margin) }
                    ?? 0,
                testShortPeriods: s3.objectLock?.testShortPeriods ?? false)
        }
        let repo = try? ctx.makeRepository()
        let driver = try? ctx.makeDriver() as? S3Repository
        let gathered = try await Blocking.run { [facts, endpoint, lock] in
            var f = facts
            f.gatherCluster(
                conninfo: config.cluster.connection, dataDirectory: config.cluster.dataDirectory, clock: SystemClock())
            if let driver, let lock { f.gatherObjectLock(driver, lock) }
            if let repo {
                f.gatherRepository(repo, endpoint: endpoint, clock: SystemClock())
            } else {
                f.repositoryError = "the repository configuration cannot be used"
            }
            return f
        }
        let findings = Doctor.evaluate(gathered, now: Date()).sorted { $0.severity > $1.severity }
        let worst = Doctor.worst(findings)
        if json {
            try Output.json(Report(worst: worst, findings: findings))
        } else {
            let counts = Doctor.Severity.allCases.reversed().compactMap { s -> String? in
                let n = findings.filter { $0.severity == s }.count
                return n == 0 ? nil : "\(n) \(s.rawValue)"
            }
            Output.line("cairn doctor: \(counts.joined(separator: ", "))")
            for f in findings {
                Output.line(
                    "\(f.severity.rawValue.uppercased().padding(toLength: 9, withPad: " ", startingAt: 0)) \(f.check): \(f.explanation)"
                )
                if let fix = f.fix, f.severity > .ok { Output.line("          fix: \(fix)") }
            }
        }
        if worst.exitCode != 0 { throw CommandExit(code: worst.exitCode) }
    }
}
