import Foundation

/// Pure scheduling: `(policy, job history, now) → due jobs, next runs, missed runs`.
public enum SchedulePlanner {
    /// The state of one job.
    public struct JobState: Sendable, Equatable {
        public var job: String
        /// The fire time that makes the job due now (the newest one in `(lastConsidered, now]`), if any.
        public var due: Date?
        /// Fire times in that interval that will not run (older ones, or all of them with `missed: skip`).
        public var missed: [Date]
        /// The next fire time after `now` (jitter included).
        public var next: Date?
    }

    /// For each job: whether it is due, which runs were missed, and when it runs next.
    /// - Parameters:
    ///   - lastConsidered: per job, the last fire time already handled (run, skipped or before the daemon's first
    ///     start); fire times up to it are ignored. A job absent from it starts from `now` (nothing missed).
    public static func plan(_ policy: SchedulePolicy, lastConsidered: [String: Date], now: Date) -> [JobState] {
        policy.jobs.map { job in
            let from = lastConsidered[job.name] ?? now
            let fires = job.cron.fireTimes(after: from, through: now, in: job.timeZone)
            var due: Date?
            var missed: [Date] = []
            if let newest = fires.last {
                switch job.missed {
                case .runOnce:
                    due = newest
                    missed = Array(fires.dropLast())
                case .skip:
                    // Only the fire time of this very minute runs; anything older was missed.
                    if now.timeIntervalSince(newest) < 60 + job.jitter {
                        due = newest
                        missed = Array(fires.dropLast())
                    } else {
                        missed = fires
                    }
                }
            }
            let next = job.cron.next(after: now, in: job.timeZone).map { $0.addingTimeInterval(jitter(job, $0)) }
            return JobState(
                job: job.name, due: due.map { $0.addingTimeInterval(jitter(job, $0)) <= now ? $0 : nil } ?? nil,
                missed: missed, next: next)
        }
    }

    /// A job's jitter for one fire time: random-looking but reproducible (derived from the job and the time), so
    /// every host and every restart agrees on it.
    public static func jitter(_ job: SchedulePolicy.Job, _ fire: Date) -> Double {
        guard job.jitter > 0 else { return 0 }
        var h: UInt64 = 1469598103934665603
        for b in "\(job.name)@\(Int(fire.timeIntervalSince1970))".utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        return Double(h % 1_000_000) / 1_000_000 * job.jitter
    }
}
