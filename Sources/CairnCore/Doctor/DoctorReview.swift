import CairnBase
import Foundation

extension Doctor {
    /// One review of the facts: each step adds its findings, in the order the report shows them.
    struct Review {
        let f: DoctorFacts
        let now: Date
        private(set) var findings: [Finding] = []

        init(f: DoctorFacts, now: Date) {
            self.f = f
            self.now = now
        }

        mutating func add(_ check: String, _ severity: Severity, _ explanation: String, fix: String? = nil) {
            findings.append(Finding(check: check, severity: severity, explanation: explanation, fix: fix))
        }

        /// How long ago `d` was, e.g. `3h`.
        func age(_ d: Date) -> String { Units.formatDuration(max(0, now.timeIntervalSince(d).rounded())) }

        /// Adds what a check shared with other callers reports through its callback.
        mutating func collect(_ check: ((String, Severity, String, String?) -> Void) -> Void) {
            var found: [Finding] = []
            check { found.append(Finding(check: $0, severity: $1, explanation: $2, fix: $3)) }
            findings += found
        }

        // MARK: The cluster

        /// The cluster's WAL and archiving settings, or why they could not be read.
        mutating func cluster() {
            if let err = f.clusterError {
                add(
                    "cluster", .critical, "cannot query the cluster: \(Redaction.redact(err))",
                    fix: "check cluster.connection in cairn.yaml and that PostgreSQL runs (`cairn check`)")
            } else if let s = f.settings {
                walLevelAndArchiveMode(s)
                archiveCommand(s)
                archiveTimeout(s)
            }
        }

        /// wal_level above minimal and archive_mode on: without them the WAL cannot make a backup consistent.
        mutating func walLevelAndArchiveMode(_ s: DoctorFacts.Settings) {
            if s.walLevel == "minimal" {
                add(
                    "wal_level", .critical, "wal_level is minimal: the WAL cannot restore a base backup",
                    fix: "ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL")
            } else {
                add("wal_level", .ok, "wal_level is \(s.walLevel)")
            }
            if s.archiveMode == "off" {
                add(
                    "archive_mode", .critical,
                    "archive_mode is off: no WAL reaches the repository, so backups cannot be made consistent and there is no point-in-time recovery",
                    fix: "ALTER SYSTEM SET archive_mode = on; then restart PostgreSQL")
            } else {
                add("archive_mode", .ok, "archive_mode is \(s.archiveMode)")
            }
        }

        /// archive_command runs `cairn wal-push %p` and carries no credentials inline.
        mutating func archiveCommand(_ s: DoctorFacts.Settings) {
            // The command is the server's, not Cairn's: never echo a secret it carries.
            let raw = s.archiveCommand.trimmingCharacters(in: .whitespaces)
            let cmd = Redaction.redact(raw)
            let inline = Redaction.inlineSecrets(in: raw)
            if !inline.isEmpty {
                add(
                    "archive_command_credentials", .warning,
                    "archive_command sets credentials inline (\(inline.joined(separator: ", "))): every database user can read archive_command (SHOW archive_command), so every one of them can read these",
                    fix:
                        "put the credentials in the file repository.credentials_file names (mode 0600, owned by the postgres user), then ALTER SYSTEM SET archive_command = '\(f.walPushCommand)'; SELECT pg_reload_conf();"
                )
            }
            if cmd.contains("cairn") && cmd.contains("wal-push") && cmd.contains("%p") {
                add("archive_command", .ok, "archive_command runs cairn wal-push: \(cmd)")
            } else {
                add(
                    "archive_command", .critical,
                    cmd.isEmpty || cmd == "(disabled)"
                        ? "archive_command is not set: completed WAL segments are never archived"
                        : "archive_command does not run `cairn wal-push %p` (it is \"\(cmd)\"): the WAL does not reach this repository",
                    fix: "ALTER SYSTEM SET archive_command = '\(f.walPushCommand)'; SELECT pg_reload_conf();")
            }
        }

        /// archive_timeout bounds the RPO of a quiet database.
        mutating func archiveTimeout(_ s: DoctorFacts.Settings) {
            if s.archiveTimeout <= 0 {
                add(
                    "archive_timeout", .warning,
                    "archive_timeout is 0: on a quiet database the newest changes can sit in an unarchived segment for hours, so the RPO is unbounded",
                    fix: "ALTER SYSTEM SET archive_timeout = '60s'; SELECT pg_reload_conf();")
            } else if s.archiveTimeout > 900 {
                add(
                    "archive_timeout", .warning,
                    "archive_timeout is \(Units.formatDuration(s.archiveTimeout)): up to that much of the newest work can be lost with the server",
                    fix: "ALTER SYSTEM SET archive_timeout = '60s'; SELECT pg_reload_conf();")
            } else {
                add(
                    "archive_timeout", .ok,
                    "archive_timeout is \(Units.formatDuration(s.archiveTimeout)), which bounds the RPO of a quiet database"
                )
            }
        }

        /// The server's major version, data checksums and WAL summaries.
        mutating func server() {
            guard let server = f.server else { return }
            collect { Doctor.serverFindings(server, $0) }
        }

        /// Whether archiving fails now, failed recently, or has never run.
        mutating func archiver() {
            if let a = f.archiver {
                if let failed = a.lastFailedTime, failed > (a.lastArchivedTime ?? .distantPast) {
                    add(
                        "archiver", .critical,
                        "archiving is failing: the last attempt (\(a.lastFailedWAL ?? "?"), \(age(failed)) ago) failed and none succeeded since; \(a.failedCount) failures in all",
                        fix:
                            "see runbooks/wal-archiving.md; the server log has cairn's message, or run `cairn wal-push` by hand on the oldest .ready segment"
                    )
                } else if let failed = a.lastFailedTime, now.timeIntervalSince(failed) < 86400 {
                    add(
                        "archiver", .warning,
                        "archiving failed \(age(failed)) ago (\(a.lastFailedWAL ?? "?")) and has recovered since",
                        fix: "look for the cause in the server log around that time (network, credentials, repository)")
                } else if a.archivedCount == 0 {
                    add(
                        "archiver", .warning, "no segment has been archived since the statistics were reset",
                        fix: "SELECT pg_switch_wal(); then check pg_stat_archiver again")
                } else {
                    add(
                        "archiver", .ok,
                        "\(a.archivedCount) segments archived, the last \(a.lastArchivedTime.map(age) ?? "?") ago, no recent failures"
                    )
                }
            }
        }

        /// Whether archiving keeps up: the segments waiting in pg_wal/archive_status.
        mutating func archiveBacklog() {
            if let ready = f.readyWALFiles {
                if ready > 16 {
                    add(
                        "archive_backlog", .warning,
                        "\(ready) segments wait in pg_wal/archive_status to be archived: archiving is falling behind",
                        fix:
                            "if archiving fails, see runbooks/wal-archiving.md; if it is only slow, set archive: {async: true} in cairn.yaml so that wal-push pushes the backlog in parallel (limits.parallelism)"
                    )
                } else {
                    add("archive_backlog", .ok, "\(ready) segments waiting to be archived")
                }
            }
        }

        // MARK: The repository

        /// The repository: reachable and writable, create-only writes, off-site and TLS, clocks.
        mutating func repository() {
            objectLock()
            if let err = f.repositoryError {
                add(
                    "repository", .critical, "the repository is not usable: \(Redaction.redact(err))",
                    fix: "`cairn check` shows the details; see runbooks/error-codes.md")
            } else {
                add("repository", .ok, "\(f.repositoryLocation) is reachable and writable")
                createOnly()
                transport()
                clocks()
            }
        }

        /// The store refuses a create-only write over an existing object.
        mutating func createOnly() {
            if let e = f.createOnlyError {
                add(
                    "create_only", .critical, e,
                    fix:
                        "use a store that honours conditional writes (If-None-Match: *): AWS S3, MinIO, SeaweedFS, Ceph RGW 18 or later"
                )
            } else {
                add(
                    "create_only", .ok,
                    "the store refuses a create-only write over an existing object: archived WAL cannot be replaced")
            }
        }

        /// Whether the repository is off-site, and whether its endpoint uses TLS.
        mutating func transport() {
            switch f.transport {
            case .local:
                add(
                    "off_site", .warning,
                    "the repository is a folder on this host (\(f.repositoryLocation)): it is not an off-site copy and is lost with the machine",
                    fix: "use an S3 repository (repository.type: s3), or copy the folder off-site regularly")
            case .plainHTTP(let host):
                let loopback = host == "localhost" || host.hasPrefix("127.") || host == "::1"
                add(
                    "tls", loopback ? .info : .critical,
                    "the repository endpoint uses plain HTTP\(loopback ? " on loopback" : ""): credentials' signatures and backup data travel unencrypted",
                    fix: "use an https:// endpoint (repository.endpoint) and, for a private CA, repository.ca_file")
            case .tls:
                add("tls", .ok, "the repository endpoint uses TLS")
            }
        }

        /// This host's clock against the repository's and PostgreSQL's.
        mutating func clocks() {
            if let skew = f.repositorySkew {
                if abs(skew) > 300 {
                    add(
                        "clock_skew", .critical,
                        "this host's clock is \(Units.formatDuration(abs(skew).rounded())) \(skew > 0 ? "behind" : "ahead of") the repository's: S3 refuses requests signed more than 15 minutes off, and backup times are wrong",
                        fix: "synchronise the clock (chrony or systemd-timesyncd)")
                } else if abs(skew) > 30 {
                    add(
                        "clock_skew", .warning,
                        "this host's clock is \(Units.formatDuration(abs(skew).rounded())) \(skew > 0 ? "behind" : "ahead of") the repository's",
                        fix: "synchronise the clock (chrony or systemd-timesyncd)")
                } else {
                    add("clock_skew", .ok, "clock within \(Int(abs(skew).rounded())) s of the repository")
                }
            }
            if let skew = f.serverSkew, abs(skew) > 30 {
                add(
                    "server_clock", .warning,
                    "PostgreSQL's clock differs from this host's by \(Units.formatDuration(abs(skew).rounded())): recovery target times are the server's",
                    fix: "synchronise the clocks of both hosts")
            }
        }

        /// With several repositories: whether this one holds every committed backup and WAL file of the primary.
        mutating func lag() {
            guard let l = f.lag else { return }
            if l.lag.isBehind {
                add(
                    "repository_lag", .warning,
                    "repository \(l.name) lacks \(l.lag.summary) that the primary \(l.primary) holds: losing the primary would lose them",
                    fix: "run `cairn copy --to \(l.name)`")
            } else {
                add(
                    "repository_lag", .ok,
                    "repository \(l.name) holds every committed backup and WAL file of the primary \(l.primary)")
            }
        }

        // MARK: Backups, drills and the window

        /// The newest full backup, the drills, retention, the recoverable window and the timelines.
        mutating func backupsAndDrills() {
            guard let catalog = f.catalog else { return }
            newestFull(catalog)
            drills(catalog)
            window(catalog)
            if let lineage = catalog.lineage {
                let timeline = f.timeline
                collect { Doctor.lineageFindings(lineage, liveTimeline: timeline, $0) }
            }
            timelineHistory(catalog)
        }

        /// A full backup exists and is younger than one and a half times the expected interval.
        mutating func newestFull(_ catalog: DoctorFacts.CatalogFacts) {
            if let full = catalog.newestFull {
                let limit = f.expectedFullInterval * 1.5
                if now.timeIntervalSince(full) > limit {
                    add(
                        "newest_full_backup", .warning,
                        "the newest full backup is \(age(full)) old (expected at least every \(Units.formatDuration(f.expectedFullInterval))): restores replay ever more WAL",
                        fix: "cairn backup; check the schedule (`cairn schedule`) and the backup job's history")
                } else {
                    add("newest_full_backup", .ok, "the newest full backup is \(age(full)) old")
                }
            } else {
                add(
                    "newest_full_backup", .critical, "there is no full backup: nothing can be restored",
                    fix: "cairn backup")
            }
        }

        /// The last drill passed, and a passing one is recent.
        mutating func drills(_ catalog: DoctorFacts.CatalogFacts) {
            if let last = catalog.lastDrill, !last.passed {
                add(
                    "drill", .critical,
                    "the last drill (\(age(last.time)) ago) failed\(last.failedCheck.map { " at \"\($0)\"" } ?? ""): a restore is not proven to work",
                    fix: "see runbooks/drill-failed.md; `cairn drill --json` shows every check")
            } else if let pass = catalog.lastPassingDrill {
                if now.timeIntervalSince(pass) > 8 * 86400 {
                    add(
                        "drill", .warning, "the newest passing drill is \(age(pass)) old",
                        fix: "cairn drill; schedule one weekly (policies/schedule.yaml)")
                } else {
                    add("drill", .ok, "the newest drill passed \(age(pass)) ago")
                }
            } else {
                add(
                    "drill", .warning, "no drill has ever passed: restores from this repository are unproven",
                    fix: "cairn drill")
            }
        }

        /// The retention policy in force, and whether the recoverable window covers it up to a recent point.
        mutating func window(_ catalog: DoctorFacts.CatalogFacts) {
            let window = f.recoveryWindow
            let wanted = now.addingTimeInterval(-window)
            if f.retentionSource == "defaults" {
                add(
                    "retention", .info,
                    "no retention policy is configured: the default keeps a \(Units.formatDuration(window)) recovery window",
                    fix: "set retention: policies/retention.yaml in cairn.yaml and run `cairn expire` daily")
            } else {
                add(
                    "retention", .ok,
                    "retention policy from \(f.retentionSource): \(Units.formatDuration(window)) recovery window")
            }
            if let start = catalog.windowStart {
                if start <= wanted {
                    add(
                        "window", .ok,
                        "every point since \(Timestamp.format(start)) is restorable; the \(Units.formatDuration(window)) window is covered"
                    )
                } else if let oldest = catalog.oldestBackup, oldest > wanted {
                    add(
                        "window", .info,
                        "the recoverable window starts \(Timestamp.format(start)): the repository is younger than the \(Units.formatDuration(window)) window"
                    )
                } else {
                    add(
                        "window", .warning,
                        "the recoverable window starts only at \(Timestamp.format(start)), short of the \(Units.formatDuration(window)) policy: WAL or a backup is missing",
                        fix: "cairn info shows the WAL gaps; cairn verify names missing segments")
                }
                if let end = catalog.windowEnd,
                    now.timeIntervalSince(end) > max(900, 3 * (f.settings?.archiveTimeout ?? 0))
                {
                    add(
                        "window_end", .warning,
                        "the newest restorable point is \(age(end)) old: recent changes are not in the repository",
                        fix: "check archiving (runbooks/wal-archiving.md)")
                }
            } else if catalog.newestFull != nil {
                add(
                    "window", .critical,
                    "no backup can be made consistent: the WAL it needs is missing from the repository",
                    fix: "check archiving (runbooks/wal-archiving.md), then cairn backup")
            }
        }

        /// The live timeline's history file is in the repository.
        mutating func timelineHistory(_ catalog: DoctorFacts.CatalogFacts) {
            if let tli = f.timeline, tli > 1, !catalog.historyTimelines.contains(tli) {
                let name = String(format: "%08X.history", tli)
                add(
                    "timeline_history", .critical,
                    "the cluster runs on timeline \(tli) but \(name) is not in the repository: restores cannot follow the timeline switch (it is not archived when archiving was off at promotion)",
                    fix: "cairn wal-push $PGDATA/pg_wal/\(name)")
            }
        }
    }
}
