import CairnBase
import Foundation

/// `cairn doctor`'s judgement: a pure function from gathered facts (``DoctorFacts``) and the time to findings,
/// each with a severity, what it means, and the fix.
public enum Doctor {
    /// How bad a finding is. The command's exit code is that of the worst one (Nagios-style: 0, 1, 2).
    public enum Severity: String, Codable, Sendable, Comparable, CaseIterable {
        case ok, info, warning, critical

        public static func < (a: Severity, b: Severity) -> Bool { rank(a) < rank(b) }
        static func rank(_ s: Severity) -> Int { Severity.allCases.firstIndex(of: s)! }

        /// 0 for ok and info, 1 for a warning, 2 for a critical finding.
        public var exitCode: Int32 { self == .critical ? 2 : self == .warning ? 1 : 0 }
    }

    /// One line of the review.
    public struct Finding: Codable, Sendable, Equatable {
        /// Stable identifier, e.g. `archive_mode`.
        public var check: String
        public var severity: Severity
        /// What was found and why it matters.
        public var explanation: String
        /// A command or setting that fixes it (nil when nothing needs doing).
        public var fix: String?
    }

    /// Reviews the facts. Checks whose facts could not be gathered say so instead of guessing.
    public static func evaluate(_ f: DoctorFacts, now: Date) -> [Finding] {
        var out: [Finding] = []
        func add(_ check: String, _ severity: Severity, _ explanation: String, fix: String? = nil) {
            out.append(Finding(check: check, severity: severity, explanation: explanation, fix: fix))
        }
        let age = { (d: Date) in Units.formatDuration(max(0, now.timeIntervalSince(d).rounded())) }

        // The cluster.
        if let err = f.clusterError {
            add("cluster", .critical, "cannot query the cluster: \(Redaction.redact(err))", fix: "check cluster.connection in cairn.yaml and that PostgreSQL runs (`cairn check`)")
        } else if let s = f.settings {
            if s.walLevel == "minimal" {
                add("wal_level", .critical, "wal_level is minimal: the WAL cannot restore a base backup",
                    fix: "ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL")
            } else {
                add("wal_level", .ok, "wal_level is \(s.walLevel)")
            }
            if s.archiveMode == "off" {
                add("archive_mode", .critical, "archive_mode is off: no WAL reaches the repository, so backups cannot be made consistent and there is no point-in-time recovery",
                    fix: "ALTER SYSTEM SET archive_mode = on; then restart PostgreSQL")
            } else {
                add("archive_mode", .ok, "archive_mode is \(s.archiveMode)")
            }
            // The command is the server's, not Cairn's: never echo a secret it carries.
            let raw = s.archiveCommand.trimmingCharacters(in: .whitespaces)
            let cmd = Redaction.redact(raw)
            let inline = Redaction.inlineSecrets(in: raw)
            if !inline.isEmpty {
                add("archive_command_credentials", .warning,
                    "archive_command sets credentials inline (\(inline.joined(separator: ", "))): every database user can read archive_command (SHOW archive_command), so every one of them can read these",
                    fix: "put the credentials in the file repository.credentials_file names (mode 0600, owned by the postgres user), then ALTER SYSTEM SET archive_command = '\(f.walPushCommand)'; SELECT pg_reload_conf();")
            }
            if cmd.contains("cairn") && cmd.contains("wal-push") && cmd.contains("%p") {
                add("archive_command", .ok, "archive_command runs cairn wal-push: \(cmd)")
            } else {
                add("archive_command", .critical,
                    cmd.isEmpty || cmd == "(disabled)" ? "archive_command is not set: completed WAL segments are never archived"
                        : "archive_command does not run `cairn wal-push %p` (it is \"\(cmd)\"): the WAL does not reach this repository",
                    fix: "ALTER SYSTEM SET archive_command = '\(f.walPushCommand)'; SELECT pg_reload_conf();")
            }
            if s.archiveTimeout <= 0 {
                add("archive_timeout", .warning, "archive_timeout is 0: on a quiet database the newest changes can sit in an unarchived segment for hours, so the RPO is unbounded",
                    fix: "ALTER SYSTEM SET archive_timeout = '60s'; SELECT pg_reload_conf();")
            } else if s.archiveTimeout > 900 {
                add("archive_timeout", .warning, "archive_timeout is \(Units.formatDuration(s.archiveTimeout)): up to that much of the newest work can be lost with the server",
                    fix: "ALTER SYSTEM SET archive_timeout = '60s'; SELECT pg_reload_conf();")
            } else {
                add("archive_timeout", .ok, "archive_timeout is \(Units.formatDuration(s.archiveTimeout)), which bounds the RPO of a quiet database")
            }
        }
        if let server = f.server { serverFindings(server, add) }
        if let a = f.archiver {
            if let failed = a.lastFailedTime, failed > (a.lastArchivedTime ?? .distantPast) {
                add("archiver", .critical, "archiving is failing: the last attempt (\(a.lastFailedWAL ?? "?"), \(age(failed)) ago) failed and none succeeded since; \(a.failedCount) failures in all",
                    fix: "see runbooks/wal-archiving.md; the server log has cairn's message, or run `cairn wal-push` by hand on the oldest .ready segment")
            } else if let failed = a.lastFailedTime, now.timeIntervalSince(failed) < 86400 {
                add("archiver", .warning, "archiving failed \(age(failed)) ago (\(a.lastFailedWAL ?? "?")) and has recovered since",
                    fix: "look for the cause in the server log around that time (network, credentials, repository)")
            } else if a.archivedCount == 0 {
                add("archiver", .warning, "no segment has been archived since the statistics were reset",
                    fix: "SELECT pg_switch_wal(); then check pg_stat_archiver again")
            } else {
                add("archiver", .ok, "\(a.archivedCount) segments archived, the last \(a.lastArchivedTime.map(age) ?? "?") ago, no recent failures")
            }
        }
        if let ready = f.readyWALFiles {
            if ready > 16 {
                add("archive_backlog", .warning, "\(ready) segments wait in pg_wal/archive_status to be archived: archiving is falling behind",
                    fix: "if archiving fails, see runbooks/wal-archiving.md; if it is only slow, set archive: {async: true} in cairn.yaml so that wal-push pushes the backlog in parallel (limits.parallelism)")
            } else {
                add("archive_backlog", .ok, "\(ready) segments waiting to be archived")
            }
        }

        // The repository.
        if let err = f.repositoryError {
            add("repository", .critical, "the repository is not usable: \(Redaction.redact(err))", fix: "`cairn check` shows the details; see runbooks/error-codes.md")
        } else {
            add("repository", .ok, "\(f.repositoryLocation) is reachable and writable")
            if let e = f.createOnlyError {
                add("create_only", .critical, e, fix: "use a store that honours conditional writes (If-None-Match: *): AWS S3, MinIO, SeaweedFS, Ceph RGW 18 or later")
            } else {
                add("create_only", .ok, "the store refuses a create-only write over an existing object: archived WAL cannot be replaced")
            }
            switch f.transport {
            case .local:
                add("off_site", .warning, "the repository is a folder on this host (\(f.repositoryLocation)): it is not an off-site copy and is lost with the machine",
                    fix: "use an S3 repository (repository.type: s3), or copy the folder off-site regularly")
            case .plainHTTP(let host):
                let loopback = host == "localhost" || host.hasPrefix("127.") || host == "::1"
                add("tls", loopback ? .info : .critical,
                    "the repository endpoint uses plain HTTP\(loopback ? " on loopback" : ""): credentials' signatures and backup data travel unencrypted",
                    fix: "use an https:// endpoint (repository.endpoint) and, for a private CA, repository.ca_file")
            case .tls:
                add("tls", .ok, "the repository endpoint uses TLS")
            }
            if let skew = f.repositorySkew {
                if abs(skew) > 300 {
                    add("clock_skew", .critical, "this host's clock is \(Units.formatDuration(abs(skew).rounded())) \(skew > 0 ? "behind" : "ahead of") the repository's: S3 refuses requests signed more than 15 minutes off, and backup times are wrong",
                        fix: "synchronise the clock (chrony or systemd-timesyncd)")
                } else if abs(skew) > 30 {
                    add("clock_skew", .warning, "this host's clock is \(Units.formatDuration(abs(skew).rounded())) \(skew > 0 ? "behind" : "ahead of") the repository's",
                        fix: "synchronise the clock (chrony or systemd-timesyncd)")
                } else {
                    add("clock_skew", .ok, "clock within \(Int(abs(skew).rounded())) s of the repository")
                }
            }
            if let skew = f.serverSkew, abs(skew) > 30 {
                add("server_clock", .warning, "PostgreSQL's clock differs from this host's by \(Units.formatDuration(abs(skew).rounded())): recovery target times are the server's",
                    fix: "synchronise the clocks of both hosts")
            }
        }

        // Backups, drills and the window.
        if let catalog = f.catalog {
            if let full = catalog.newestFull {
                let limit = f.expectedFullInterval * 1.5
                if now.timeIntervalSince(full) > limit {
                    add("newest_full_backup", .warning, "the newest full backup is \(age(full)) old (expected at least every \(Units.formatDuration(f.expectedFullInterval))): restores replay ever more WAL",
                        fix: "cairn backup; check the schedule (`cairn schedule`) and the backup job's history")
                } else {
                    add("newest_full_backup", .ok, "the newest full backup is \(age(full)) old")
                }
            } else {
                add("newest_full_backup", .critical, "there is no full backup: nothing can be restored",
                    fix: "cairn backup")
            }
            if let last = catalog.lastDrill, !last.passed {
                add("drill", .critical, "the last drill (\(age(last.time)) ago) failed\(last.failedCheck.map { " at \"\($0)\"" } ?? ""): a restore is not proven to work",
                    fix: "see runbooks/drill-failed.md; `cairn drill --json` shows every check")
            } else if let pass = catalog.lastPassingDrill {
                if now.timeIntervalSince(pass) > 8 * 86400 {
                    add("drill", .warning, "the newest passing drill is \(age(pass)) old", fix: "cairn drill; schedule one weekly (policies/schedule.yaml)")
                } else {
                    add("drill", .ok, "the newest drill passed \(age(pass)) ago")
                }
            } else {
                add("drill", .warning, "no drill has ever passed: restores from this repository are unproven", fix: "cairn drill")
            }
            let window = f.recoveryWindow
            let wanted = now.addingTimeInterval(-window)
            if f.retentionSource == "defaults" {
                add("retention", .info, "no retention policy is configured: the default keeps a \(Units.formatDuration(window)) recovery window",
                    fix: "set retention: policies/retention.yaml in cairn.yaml and run `cairn expire` daily")
            } else {
                add("retention", .ok, "retention policy from \(f.retentionSource): \(Units.formatDuration(window)) recovery window")
            }
            if let start = catalog.windowStart {
                if start <= wanted {
                    add("window", .ok, "every point since \(Timestamp.format(start)) is restorable; the \(Units.formatDuration(window)) window is covered")
                } else if let oldest = catalog.oldestBackup, oldest > wanted {
                    add("window", .info, "the recoverable window starts \(Timestamp.format(start)): the repository is younger than the \(Units.formatDuration(window)) window")
                } else {
                    add("window", .warning, "the recoverable window starts only at \(Timestamp.format(start)), short of the \(Units.formatDuration(window)) policy: WAL or a backup is missing",
                        fix: "cairn info shows the WAL gaps; cairn verify names missing segments")
                }
                if let end = catalog.windowEnd, now.timeIntervalSince(end) > max(900, 3 * (f.settings?.archiveTimeout ?? 0)) {
                    add("window_end", .warning, "the newest restorable point is \(age(end)) old: recent changes are not in the repository",
                        fix: "check archiving (runbooks/wal-archiving.md)")
                }
            } else if catalog.newestFull != nil {
                add("window", .critical, "no backup can be made consistent: the WAL it needs is missing from the repository",
                    fix: "check archiving (runbooks/wal-archiving.md), then cairn backup")
            }
            if let lineage = catalog.lineage { lineageFindings(lineage, liveTimeline: f.timeline, add) }
            if let tli = f.timeline, tli > 1, !catalog.historyTimelines.contains(tli) {
                let name = String(format: "%08X.history", tli)
                add("timeline_history", .critical, "the cluster runs on timeline \(tli) but \(name) is not in the repository: restores cannot follow the timeline switch (it is not archived when archiving was off at promotion)",
                    fix: "cairn wal-push $PGDATA/pg_wal/\(name)")
            }
        }
        return out
    }

    /// Whether the live cluster's timeline is production's recorded history, and whether restores can tell which
    /// history is production's.
    static func lineageFindings(_ lineage: Lineage, liveTimeline: UInt32?,
                                _ add: (String, Severity, String, String?) -> Void) {
        if let tli = liveTimeline {
            switch lineage.statuses[tli] ?? .undecided {
            case .production:
                add("lineage", .ok, "the cluster's timeline \(tli) is production's recorded history", nil)
            case .copy:
                add("lineage", .critical, "the cluster cluster.connection reaches runs on timeline \(tli), which the repository records as a copy's: restores and retention follow timeline \(lineage.production) instead",
                    "if this cluster is production, `cairn timeline adopt \(tli) --reason ...`; otherwise point cluster.connection at production (runbooks/side-restore.md)")
            case .undecided:
                add("lineage", .warning, "the cluster runs on timeline \(tli), which is not yet recorded as production's: restores refuse to choose between it and timeline \(lineage.production) until a backup runs on it",
                    "run `cairn backup` (or `cairn timeline adopt \(tli) --reason ...`)")
            }
        }
        if !lineage.ambiguous.isEmpty, liveTimeline.map({ !lineage.ambiguous.contains($0) }) ?? true {
            add("lineage_ambiguous", .warning, lineage.ambiguityError().message, "see `cairn timeline` and runbooks/side-restore.md")
        }
    }

    /// The worst severity of `findings` (ok when empty).
    public static func worst(_ findings: [Finding]) -> Severity { findings.map(\.severity).max() ?? .ok }
}
