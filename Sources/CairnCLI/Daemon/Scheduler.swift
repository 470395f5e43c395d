import CairnBase
import CairnCore
import Foundation
import Logging
import ServiceLifecycle
import Subprocess
import Synchronization

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Runs the schedule policy's jobs as child processes (`cairn --config … <job>`), each under the repository lock
/// that the job command takes itself, so two daemons (or a daemon and cron) never run the same job at once.
/// A run longer than `max_run_time` is stopped (SIGTERM, then SIGKILL) and reported. On SIGTERM/SIGINT the
/// daemon stops starting jobs, asks running ones to stop (an interrupted backup never commits) and waits for them.
final class Scheduler: Service, @unchecked Sendable {
    let policy: SchedulePolicy
    let configPath: String
    let executable: String
    let logger = Logger(label: "cairn.daemon")
    let figures = Mutex(DaemonFigures())
    private let children = Mutex<[String: pid_t]>([:])
    private let lastTick = Mutex(Date())
    /// Per job, the last fire time already handled.
    private var considered: [String: Date]

    init(policy: SchedulePolicy, configPath: String, executable: String, history: [JobRecord], now: Date) {
        self.policy = policy
        self.configPath = configPath
        self.executable = executable
        // Missed runs are counted from the last recorded start of each job; a job never run starts now.
        var c: [String: Date] = [:]
        for job in policy.jobs { c[job.name] = history.last { $0.job == job.name }?.started }
        considered = c.compactMapValues { $0 }
    }

    /// True while the scheduling loop is alive (for /healthz).
    var healthy: Bool { Date().timeIntervalSince(lastTick.withLock { $0 }) < 120 }

    func run() async throws {
        logger.notice("daemon started", metadata: ["jobs": "\(policy.jobs.map(\.name).joined(separator: ","))"])
        await withTaskGroup(of: Void.self) { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let now = Date()
                lastTick.withLock { $0 = now }
                let states = SchedulePlanner.plan(policy, lastConsidered: considered, now: now)
                for state in states {
                    guard let job = policy.jobs.first(where: { $0.name == state.job }) else { continue }
                    if considered[job.name] == nil { considered[job.name] = now }
                    for m in state.missed {
                        logger.warning(
                            "missed run",
                            metadata: [
                                "job": "\(job.name)", "scheduled": "\(Timestamp.format(m))",
                                "policy": "\(job.missed.rawValue)"
                            ])
                    }
                    figures.withLock {
                        $0.missedRuns[job.name, default: 0] += state.missed.count
                        $0.nextRun[job.name] = state.next
                    }
                    if let last = state.missed.last { considered[job.name] = max(considered[job.name] ?? last, last) }
                    guard let due = state.due else { continue }
                    considered[job.name] = due
                    if figures.withLock({ $0.running.contains(job.name) }) {
                        logger.warning(
                            "previous run still going; this run is skipped", metadata: ["job": "\(job.name)"])
                        continue
                    }
                    figures.withLock { _ = $0.running.insert(job.name) }
                    group.addTask { await self.runJob(job) }
                }
                let nextWake = states.compactMap(\.next).min().map { $0.timeIntervalSince(Date()) } ?? 30
                try? await cancelWhenGracefulShutdown {
                    try await Task.sleep(nanoseconds: UInt64(max(0.2, min(30, nextWake)) * 1_000_000_000))
                }
            }
            logger.notice("shutting down: stopping running jobs")
            for (_, pid) in children.withLock({ $0 }) { kill(pid, SIGTERM) }
            await group.waitForAll()
        }
        logger.notice("daemon stopped")
    }

    /// Runs one job as a child process and enforces its maximum run time.
    func runJob(_ job: SchedulePolicy.Job) async {
        let args =
            ["--config", configPath] + job.arguments + [
                "--lock-ttl", String(Int(job.maxRunTime + 300)), "--log-format", "json"
            ]
        logger.info("job started", metadata: ["job": "\(job.name)"])
        let started = Date()
        let pidBox = Mutex<pid_t>(0)
        let watchdog = Task {
            try await Task.sleep(nanoseconds: UInt64(job.maxRunTime * 1_000_000_000))
            let pid = pidBox.withLock { $0 }
            guard pid > 0 else { return }
            logger.error(
                "job exceeded max_run_time; stopping it",
                metadata: ["job": "\(job.name)", "max_run_time": "\(Units.formatDuration(job.maxRunTime))"])
            figures.withLock { $0.timeouts[job.name, default: 0] += 1 }
            kill(pid, SIGTERM)
            try await Task.sleep(nanoseconds: 30_000_000_000)
            kill(pid, SIGKILL)
        }
        var status = "failed"
        do {
            let r = try await Subprocess.run(
                .path(FilePath(executable)), arguments: Arguments(args),
                input: .none, output: .currentStandardOutput, error: .currentStandardError
            ) { execution in
                pidBox.withLock { $0 = execution.processIdentifier.value }
                children.withLock { $0[job.name] = execution.processIdentifier.value }
            }
            switch r.terminationStatus {
            case .exited(0): status = "ok"
            case .exited(ErrorCode.repoLocked.exitCode): status = "skipped: another host holds the lock"
            case .exited(let c): status = "failed (exit \(c))"
            case .signaled(let s): status = "stopped by signal \(s)"
            }
        } catch {
            status = "could not start: \(error)"
        }
        watchdog.cancel()
        children.withLock { $0[job.name] = nil }
        figures.withLock { _ = $0.running.remove(job.name) }
        logger.info(
            "job finished",
            metadata: [
                "job": "\(job.name)", "status": "\(status)",
                "seconds": "\(Int(Date().timeIntervalSince(started)))"
            ])
    }
}
