import CairnBase
import CairnCore
import Foundation
import Prometheus

/// `metrics.listen`: an IPv4 address and port.
enum MetricsAddress {
    static func parse(_ text: String) -> (host: String, port: UInt16)? {
        let p = text.split(separator: ":")
        guard p.count == 2, let port = UInt16(p[1]), p[0].split(separator: ".").count == 4 else { return nil }
        return (String(p[0]), port)
    }
}

/// What only a running daemon knows.
struct DaemonFigures: Sendable {
    var running: Set<String> = []
    var missedRuns: [String: Int] = [:]
    var nextRun: [String: Date] = [:]
    var timeouts: [String: Int] = [:]
}

/// Renders a snapshot in the Prometheus text format through swift-prometheus.
enum MetricsRenderer {
    static func render(_ s: MetricsSnapshot, daemon: DaemonFigures? = nil, now: Date = Date()) -> String {
        let r = PrometheusCollectorRegistry()
        jobs(s, r)
        repository(s, r, now: now)
        drills(s, r)
        repositories(s, r)
        if let daemon { self.daemon(daemon, r) }
        return r.emitToString()
    }

    /// Sets a gauge (nothing when `value` is nil).
    private static func gauge(
        _ r: PrometheusCollectorRegistry, _ name: String, _ help: String, _ value: Double?,
        _ labels: [(String, String)] = []
    ) {
        guard let value else { return }
        r.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
            .set(value)
    }

    private static func ts(_ d: Date?) -> Double? { d.map { $0.timeIntervalSince1970 } }

    /// Each job's last start, success, failure and duration.
    private static func jobs(_ s: MetricsSnapshot, _ r: PrometheusCollectorRegistry) {
        for (job, j) in s.jobs.sorted(by: { $0.key < $1.key }) {
            let l = [("job", job)]
            gauge(r, "cairn_job_last_start_timestamp_seconds", "When the job last started.", ts(j.lastStart), l)
            gauge(
                r,
                "cairn_job_last_success_timestamp_seconds", "When the job last finished successfully.",
                ts(j.lastSuccess), l)
            gauge(r, "cairn_job_last_failure_timestamp_seconds", "When the job last failed.", ts(j.lastFailure), l)
            gauge(r, "cairn_job_last_duration_seconds", "How long the job's last run took.", j.lastDuration, l)
        }
    }

    /// Backups, stored bytes, the WAL archive and the recovery window.
    private static func repository(_ s: MetricsSnapshot, _ r: PrometheusCollectorRegistry, now: Date) {
        for kind in ["full", "logical"] {
            gauge(
                r,
                "cairn_backups", "Committed backups in the repository.", Double(s.backups[kind] ?? 0), [("kind", kind)])
        }
        gauge(
            r,
            "cairn_repository_stored_bytes", "Bytes stored in the repository.", Double(s.backupBytes),
            [("kind", "backups")])
        gauge(
            r, "cairn_repository_stored_bytes", "Bytes stored in the repository.", Double(s.walBytes), [("kind", "wal")]
        )
        gauge(r, "cairn_wal_archived_segments", "WAL segments in the repository.", Double(s.walSegments))
        gauge(
            r,
            "cairn_wal_newest_archived_timestamp_seconds", "When the newest WAL segment was archived.", ts(s.newestWAL))
        gauge(
            r,
            "cairn_wal_archive_age_seconds", "Age of the newest archived WAL segment (archive lag).",
            s.newestWAL.map { now.timeIntervalSince($0) })
        gauge(
            r,
            "cairn_wal_ready_files", "WAL files PostgreSQL has not archived yet (.ready in pg_wal/archive_status).",
            s.readyWALFiles.map(Double.init))
        gauge(
            r,
            "cairn_recovery_window_start_timestamp_seconds", "The earliest point the repository can restore.",
            ts(s.windowStart))
        gauge(
            r,
            "cairn_recovery_window_end_timestamp_seconds", "The latest point the repository can restore.",
            ts(s.windowEnd))
    }

    /// With several repositories: each one readable or not, and what it lacks of the primary's.
    private static func repositories(_ s: MetricsSnapshot, _ r: PrometheusCollectorRegistry) {
        for m in s.repositories {
            let l = [("repository", m.name)]
            gauge(r, "cairn_repository_up", "1 when the repository could be read, 0 when not.", m.up ? 1 : 0, l)
            guard m.up else { continue }
            gauge(
                r, "cairn_repository_missing_backups", "Committed backups of the primary the repository lacks.",
                Double(m.missingBackups), l)
            gauge(
                r, "cairn_repository_missing_wal_files", "WAL files of the primary the repository lacks.",
                Double(m.missingWAL), l)
        }
    }

    /// The last restore drill.
    private static func drills(_ s: MetricsSnapshot, _ r: PrometheusCollectorRegistry) {
        gauge(r, "cairn_drill_last_timestamp_seconds", "When the last restore drill finished.", ts(s.lastDrill))
        gauge(
            r,
            "cairn_drill_last_passed", "1 when the last restore drill passed, 0 when it failed.",
            s.lastDrillPassed.map { $0 ? 1 : 0 })
        gauge(r, "cairn_drill_last_rto_seconds", "Total RTO measured by the last restore drill.", s.lastDrillRTO)
        gauge(
            r,
            "cairn_drill_last_pass_timestamp_seconds", "When the last passing restore drill finished.",
            ts(s.lastPassingDrill))
    }

    /// What the daemon knows of each job: running, missed runs, timeouts, next run.
    private static func daemon(_ d: DaemonFigures, _ r: PrometheusCollectorRegistry) {
        for job in Set(d.missedRuns.keys).union(d.nextRun.keys).union(d.running).sorted() {
            let l = [("job", job)]
            gauge(r, "cairn_job_running", "1 while the daemon runs the job.", d.running.contains(job) ? 1 : 0, l)
            gauge(
                r,
                "cairn_job_missed_runs", "Scheduled runs the daemon missed (it was down) since it started.",
                Double(d.missedRuns[job] ?? 0), l)
            gauge(
                r,
                "cairn_job_timeouts", "Runs stopped for exceeding max_run_time since the daemon started.",
                Double(d.timeouts[job] ?? 0), l)
            gauge(r, "cairn_job_next_run_timestamp_seconds", "When the job runs next.", ts(d.nextRun[job]), l)
        }
    }
}
