import Foundation

/// `policies/schedule.yaml`: the jobs `cairn daemon` runs (and `cairn schedule print-crontab` prints).
public struct SchedulePolicy: Sendable, Equatable {
    /// What to do with runs that were missed while the daemon was down.
    public enum MissedRuns: String, Sendable, CaseIterable {
        /// Run once now (however many were missed).
        case runOnce = "run-once"
        /// Skip them and report them (metrics and log).
        case skip
    }

    public struct Job: Sendable, Equatable {
        /// `backup-full`, `backup-incr`, `backup-diff`, `backup-logical`, `expire`, `verify`, `drill`, `report`.
        public var name: String
        public var cron: CronExpression
        public var timeZone: TimeZone
        /// Up to this many seconds of random delay after each fire time (spreads many hosts out).
        public var jitter: Double
        /// A run longer than this is stopped and reported as failed.
        public var maxRunTime: Double
        public var missed: MissedRuns

        public init(
            name: String, cron: CronExpression, timeZone: TimeZone = .gmt, jitter: Double = 0,
            maxRunTime: Double = 6 * 3600, missed: MissedRuns = .runOnce
        ) {
            self.name = name
            self.cron = cron
            self.timeZone = timeZone
            self.jitter = jitter
            self.maxRunTime = maxRunTime
            self.missed = missed
        }

        /// The cairn command line (after `cairn --config …`) that runs this job.
        public var arguments: [String] {
            switch name {
            case "backup-full": return ["backup"]
            case "backup-logical": return ["backup", "--type", "logical"]
            case "backup-incr": return ["backup", "--type", "incr"]
            case "backup-diff": return ["backup", "--type", "diff"]
            default: return [name]
            }
        }
    }

    /// The job names a schedule may use.
    public static let jobNames = [
        "backup-full", "backup-incr", "backup-diff", "backup-logical", "expire", "verify", "drill", "report"
    ]

    public var jobs: [Job]

    public init(jobs: [Job]) { self.jobs = jobs }
}
