import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn drill`: proves that a backup restores. It restores into a scratch folder, starts a temporary PostgreSQL
/// (archiving off, its own port and socket, trust only on its private socket), replays WAL from the repository to a
/// target, checks the result, records the verdict and the RTO in `drills/<id>.json`, and always removes the scratch
/// cluster. A failed check is a verdict, not an error: the record is written either way.
public enum DrillOperation {
    public struct Options: Sendable {
        /// A backup id instead of the policy's choice.
        public var backupId: String?
        /// A target time instead of the policy's choice.
        public var targetTime: Date?
        /// `restore_command` for the scratch cluster (cairn wal-fetch with the same configuration).
        public var restoreCommand: String
        /// The role to connect as (the configured connection's user).
        public var user: String
        public var parallelism = 4
        /// Segments of the backup's own WAL fetched into the spool before the scratch cluster starts
        /// (`limits.prefetch`, see ``RestoreOperation/warmWALSpool(repo:pipeline:catalog:plan:targetDirectory:parallelism:limit:)``).
        public var prefetch = 16
        public var recoveryWindow: Double = 30 * 86400
        /// Each step's name as it starts, and the restore's bytes.
        public var progress = BackupOperation.Progress()

        public init(restoreCommand: String, user: String) {
            self.restoreCommand = restoreCommand
            self.user = user
        }
    }

    static let logger = Logger(label: "cairn.drill")

    public static func run(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, policy: DrillPolicy, options: Options,
        tools: ToolRunner, clock: any WallClock
    ) async throws -> DrillRecord {
        let started = clock.now()
        let backup = try choose(catalog, policy: policy, options: options, now: started)
        // The programs of the backup's major (a PostgreSQL 18 backup needs 18's pg_ctl and pg_verifybackup).
        let tools = try await tools.matching(
            major: backup.pgVersionNum / 10000, Drill.programs, for: "backup \(backup.id)")
        let id = Layout.backupId(at: started, type: "D")
        let keep = policy.keepScratch && backup.kind != .logical
        let folder = policy.scratchDirectory + "/" + (keep ? keptFolderName : id)
        // Registered before it exists, so an interrupt from here on removes it (and the check below stops us).
        ScratchCleanup.register(folder: folder, data: folder + "/data", keep: keep)
        defer { ScratchCleanup.clean(folder: folder) }
        try Interruption.check()
        do {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CairnError(
                .localIO, "cannot create the drill folder \(folder): \(error.localizedDescription)",
                hint:
                    "make \(policy.scratchDirectory) writable by \(NSUserName()) (uid \(getuid())), the user the drill runs as, or set scratch_directory in the drill policy to a folder it can write"
            )
        }
        logger.info("drill started", metadata: ["id": "\(id)", "backup": "\(backup.id)"])
        var drill = Drill(id: id, folder: folder, user: options.user, tools: tools, clock: clock, started: started)
        drill.progress = options.progress
        if backup.kind == .logical {
            try await drill.logical(repo: repo, pipeline: pipeline, backup: backup, policy: policy)
        } else {
            try await drill.physical(
                repo: repo, pipeline: pipeline, catalog: catalog, backup: backup, policy: policy, options: options)
        }
        let finished = clock.now()
        let failed = drill.checks.first { !$0.ok }
        let record = DrillRecord(
            id: id, backupId: backup.id, backupKind: backup.kind.rawValue, target: drill.targetDescription,
            reachedTime: drill.reachedTime, verdict: failed == nil ? .pass : .fail, failedCheck: failed?.name,
            checks: drill.checks,
            rto: .init(
                restoreSeconds: drill.restoreSeconds, replaySeconds: drill.replaySeconds,
                checksSeconds: drill.checksSeconds,
                totalSeconds: finished.timeIntervalSince(started)),
            started: started, finished: finished, host: ProcessInfo.processInfo.hostName, bytesRestored: drill.bytes,
            restoreMode: drill.restoreMode, bytesRewritten: drill.bytesRewritten)
        _ = try await Blocking.run {
            try Interruption.check()
            return try repo.put(DrillRecord.key(id), try SealedDocument.seal(record), options: .createOnly)
        }
        logger.info("drill finished", metadata: ["id": "\(id)", "verdict": "\(record.verdict.rawValue)"])
        return record
    }

    /// The folder under the scratch directory that `keep_scratch` drills restore into, one after the other.
    public static let keptFolderName = "kept"

    /// The backup to drill: the one asked for, or the newest / a random one inside the window.
    static func choose(_ catalog: Catalog, policy: DrillPolicy, options: Options, now: Date) throws -> BackupManifest {
        if let id = options.backupId {
            guard let b = catalog.backup(id) else {
                throw CairnError(.backupNotFound, "no committed backup \(id)", hint: "`cairn list` shows the backups")
            }
            return b
        }
        let spans = RecoveryPlanner.window(catalog)
        let restorable = catalog.backups.filter { b in b.kind == .logical || spans.contains { $0.backupId == b.id } }
        guard let newest = restorable.last else {
            throw CairnError(
                .backupNotFound, "the repository has no restorable backup to drill",
                hint: "take one with `cairn backup`")
        }
        switch policy.backup {
        case .latest:
            return newest
        case .random:
            let inWindow = restorable.filter { $0.stop.time >= now.addingTimeInterval(-options.recoveryWindow) }
            return (inWindow.isEmpty ? [newest] : inWindow).randomElement()!
        }
    }
}

/// The state of one drill while it runs.
struct Drill {
    let id: String
    let folder: String
    let user: String
    let tools: ToolRunner
    let clock: any WallClock
    let started: Date
    var checks: [DrillRecord.Check] = []
    var targetDescription = ""
    var reachedTime: Date?
    var restoreSeconds = 0.0
    var replaySeconds = 0.0
    var checksSeconds = 0.0
    var bytes: Int64 = 0
    /// `full` or `delta` (physical drills), and what a delta restore rewrote.
    var restoreMode: String?
    var bytesRewritten: Int64?
    var data: String { folder + "/data" }
    var socket: String { folder + "/sock" }
    var port = 0
    var progress = BackupOperation.Progress()

    init(id: String, folder: String, user: String, tools: ToolRunner, clock: any WallClock, started: Date) {
        self.id = id
        self.folder = folder
        self.user = user
        self.tools = tools
        self.clock = clock
        self.started = started
    }

    var conninfo: String { "host=\(socket) port=\(port) user=\(user) dbname=postgres" }

    /// The PostgreSQL programs a drill runs, whose major must be the backup's.
    static let programs = [
        "initdb", "pg_ctl", "postgres", "pg_verifybackup", "pg_amcheck", "pg_dump", "pg_restore", "psql"
    ]

    mutating func check(_ name: String, _ body: () async throws -> String) async {
        let t = clock.now()
        progress.onPhase(name)
        do {
            let detail = try await body()
            checks.append(.init(name: name, ok: true, detail: detail, seconds: clock.now().timeIntervalSince(t)))
        } catch {
            checks.append(
                .init(
                    name: name, ok: false, detail: describeError(error).message,
                    seconds: clock.now().timeIntervalSince(t)))
        }
    }

    var failed: Bool { checks.contains { !$0.ok } }

    // MARK: physical

    mutating func physical(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, backup: BackupManifest,
        policy: DrillPolicy, options: DrillOperation.Options
    ) async throws {
        let target = chooseTarget(catalog, backup: backup, policy: policy, options: options)
        targetDescription = target.description
        guard let plan = await planRecovery(catalog, target: target, backup: backup, options: options) else { return }
        await restoreFiles(
            repo: repo, pipeline: pipeline, catalog: catalog, plan: plan, backup: backup, options: options)
        if failed { return }
        let verifySeconds = await verifyRestoredFiles(backup, policy: policy)
        try prepareServer(ssl: false)
        let log = await replay(policy: policy)
        if failed { return }
        await checkTargetReached(target, plan: plan, catalog: catalog, log: log)
        let t3 = clock.now()
        await runChecks(policy: policy)
        checksSeconds = clock.now().timeIntervalSince(t3) + verifySeconds
    }

    /// The recovery plan for `target` from `backup`. A plan that cannot be made (missing WAL, target out of reach)
    /// is the drill's finding, not an error: nil.
    mutating func planRecovery(
        _ catalog: Catalog, target: RecoveryTarget, backup: BackupManifest,
        options: DrillOperation.Options
    ) async -> RecoveryPlan? {
        var planned: RecoveryPlan?
        let now = clock.now()
        await check("plan") {
            let p = try RecoveryPlanner.plan(
                catalog, target: target, backupId: backup.id, action: .promote,
                restoreCommand: options.restoreCommand, now: now)
            planned = p
            return "backup \(p.backupId), WAL from \(p.firstSegment) on timeline \(p.timeline)"
        }
        return planned
    }

    /// Lays the backup out in the drill folder (tablespaces beside it, archiving off), every digest verified.
    mutating func restoreFiles(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, plan: RecoveryPlan,
        backup: BackupManifest, options: DrillOperation.Options
    ) async {
        var restoreOptions = RestoreOperation.Options(targetDirectory: data)
        // A kept folder (keep_scratch) holds the previous drill's cluster: only what differs is rewritten. It is the
        // drill's own folder, so whichever cluster left it there is overwritten (force); a running one is refused.
        restoreOptions.delta = FileManager.default.fileExists(atPath: data)
        restoreOptions.force = restoreOptions.delta
        restoreMode = restoreOptions.delta ? "delta" : "full"
        try? FileManager.default.removeItem(atPath: folder + "/postgres.log")  // the checks read this drill's log only
        restoreOptions.archiveOff = true
        restoreOptions.parallelism = options.parallelism
        for a in backup.archives {
            if let oid = a.tablespaceOid { restoreOptions.tablespaceMap[oid] = folder + "/ts-\(oid)" }
        }
        let t0 = clock.now()
        let opts = restoreOptions
        let (clock, progress, prefetch) = (self.clock, self.progress, options.prefetch)
        var rewritten: Int64?
        await check("restore") {
            let r = try await Blocking.run {
                let r = try RestoreOperation.run(
                    repo: repo, pipeline: pipeline, catalog: catalog, plan: plan, options: opts, clock: clock,
                    onTotal: progress.onTotal, onBytes: progress.onBytes)
                RestoreOperation.warmWALSpool(
                    repo: repo, pipeline: pipeline, catalog: catalog, plan: plan, targetDirectory: opts.targetDirectory,
                    parallelism: opts.parallelism, limit: prefetch)
                return r
            }
            rewritten = r.delta?.bytesRewritten
            let delta =
                r.delta.map {
                    ", delta onto the kept folder: \(Units.formatBytes($0.bytesRewritten)) rewritten in \($0.filesRewritten) files, \($0.filesRemoved) removed"
                } ?? ""
            return
                "\(r.files) files, \(Units.formatBytes(r.bytes)) from backup \(backup.id), every object's digest verified\(delta)"
        }
        bytesRewritten = rewritten
        restoreSeconds = clock.now().timeIntervalSince(t0)
        bytes = backup.size
    }

    /// `pg_verifybackup` of the restored files when the backup has PostgreSQL's manifest; returns the seconds it took.
    mutating func verifyRestoredFiles(_ backup: BackupManifest, policy: DrillPolicy) async -> Double {
        let t1 = clock.now()
        if backup.pgManifest != nil && policy.verifyBackup {
            let (data, tools) = (self.data, self.tools)
            await check("pg_verifybackup") {
                _ = try await tools.run("pg_verifybackup", ["--no-parse-wal", "--quiet", data])
                return "the restored files match PostgreSQL's backup manifest"
            }
        }
        return clock.now().timeIntervalSince(t1)
    }

    /// Starts the scratch server and waits until it has replayed WAL and been promoted; returns its log.
    mutating func replay(policy: DrillPolicy) async -> String {
        let t2 = clock.now()
        let (data, folder, tools, clock) = (self.data, self.folder, self.tools, self.clock)
        let conn = conninfo
        await check("recovery") {
            _ = try await tools.run("pg_ctl", ["-D", data, "-l", folder + "/postgres.log", "-W", "start"])
            try await Drill.waitForPromotion(
                conninfo: conn, log: folder + "/postgres.log", timeout: policy.timeout, clock: clock)
            return "PostgreSQL replayed WAL and was promoted"
        }
        replaySeconds = clock.now().timeIntervalSince(t2)
        let log = (try? String(contentsOfFile: folder + "/postgres.log", encoding: .utf8)) ?? ""
        reachedTime = Drill.lastTransactionTime(log)
        return log
    }

    /// Replay stopped at the target: for `latest`, at the end of the archive (stopping earlier means a gap).
    mutating func checkTargetReached(_ target: RecoveryTarget, plan: RecoveryPlan, catalog: Catalog, log: String) async
    {
        let newest = plan.lastAvailableSegment
        let archiveEnd = catalog.wal.segments.values.flatMap { $0.values }.map { $0.file.fileName }
            .filter { $0.count == 24 && String($0.prefix(8)) == String(format: "%08X", plan.timeline) }.max()
        await check("target reached") {
            switch target {
            case .latest:
                guard log.contains("archive recovery complete") else {
                    throw CairnError(.restoreFailed, "recovery did not complete")
                }
                // Replay must get to the newest archived segment: stopping earlier means a gap.
                let replayed = Drill.restoredSegments(log).max()
                if let end = archiveEnd, let replayed, replayed.suffix(16) < end.suffix(16) {
                    throw CairnError(
                        .walMissing,
                        "replay stopped after \(replayed) but the archive goes on to \(end): the segment after \(newest ?? replayed) is missing"
                    )
                }
                return "replayed to the end of the archive (\(replayed ?? "-"))"
            default:
                guard let line = log.split(separator: "\n").first(where: { $0.contains("recovery stopping") }) else {
                    throw CairnError(.restoreFailed, "PostgreSQL did not report stopping at the target \(target)")
                }
                return String(line.drop { $0 != "r" }.prefix(200))
            }
        }
    }

    /// A random LSN the backup can reach (not a time: PostgreSQL stops at an LSN target without needing a later
    /// commit, so the drill never fails because the database was idle), the backup's end, or the archive's end.
    func chooseTarget(
        _ catalog: Catalog, backup: BackupManifest, policy: DrillPolicy, options: DrillOperation.Options
    ) -> RecoveryTarget {
        if let t = options.targetTime { return .time(t) }
        switch policy.target {
        case .end: return .immediate
        case .latest: return .latest
        case .random:
            let path = catalog.lineage.productionPath
            let reach = RecoveryPlanner.reach(backup, path: path, wal: catalog.wal)
            guard let last = reach.lastSegment, last.startLSN > backup.stop.lsn else { return .immediate }
            return .lsn(LSN(UInt64.random(in: backup.stop.lsn.value..<last.startLSN.value)))
        }
    }

    /// Settings that make the scratch server safe: archiving off (already), its own port and socket, trust only on
    /// its private socket, no SSL files from the original host, logs to the drill folder.
    mutating func prepareServer(ssl: Bool) throws {
        port = LocalPort.free()
        try Interruption.check()
        try FileManager.default.createDirectory(
            atPath: socket, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let hba = folder + "/pg_hba.conf"
        try "local all all trust\n".write(toFile: hba, atomically: true, encoding: .utf8)
        if !FileManager.default.fileExists(atPath: data + "/postgresql.conf") {
            try "# created by cairn drill: the backup had no postgresql.conf in its data directory\n"
                .write(toFile: data + "/postgresql.conf", atomically: true, encoding: .utf8)
        }
        let settings = [
            "port = \(port)", "listen_addresses = '127.0.0.1'", "unix_socket_directories = '\(socket)'",
            "hba_file = '\(hba)'", "ssl = off", "logging_collector = off", "log_destination = 'stderr'",
            "archive_mode = off", "cluster_name = 'cairn-drill-\(id)'", "shared_buffers = '64MB'"
        ]
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/postgresql.auto.conf"))
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(
            contentsOf: Data(
                ("\n# cairn drill \(id): a scratch server\n" + settings.joined(separator: "\n") + "\n").utf8))
    }

    /// Waits until the server accepts writes (recovery done, promoted); fails early on a FATAL in the log.
    static func waitForPromotion(conninfo: String, log: String, timeout: Double, clock: any WallClock) async throws {
        let deadline = clock.now().addingTimeInterval(timeout)
        while clock.now() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let fatal = text.split(separator: "\n").first(where: { $0.contains("FATAL:") || $0.contains("PANIC:") }),
                !fatal.contains("the database system is starting up")
                    && !fatal.contains("the database system is not yet accepting connections")
            {
                throw CairnError(.restoreFailed, String(fatal.drop { $0 != "F" && $0 != "P" }.prefix(300)))
            }
            if let r = try? await Blocking.run({
                try PGConnection(conninfo: conninfo).scalar("SELECT pg_is_in_recovery()")
            }), r == "f" {
                return
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        throw CairnError(.restoreFailed, "recovery did not finish within \(Units.formatDuration(timeout))")
    }

    /// Segments PostgreSQL reported as "restored log file" (from the archive).
    static func restoredSegments(_ log: String) -> [String] {
        log.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: "restored log file \"") else { return nil }
            let name = line[r.upperBound...].prefix { $0 != "\"" }
            return name.count == 24 ? String(name) : nil
        }
    }

    /// "last completed transaction was at log time 2026-11-25 15:35:36.362245+00"
    static func lastTransactionTime(_ log: String) -> Date? {
        guard
            let line = log.split(separator: "\n").last(where: {
                $0.contains("last completed transaction was at log time")
            }),
            let r = line.range(of: "log time ")
        else { return nil }
        let text = String(line[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        for fmt in ["yyyy-MM-dd HH:mm:ss.SSSSSSX", "yyyy-MM-dd HH:mm:ssX"] {
            f.dateFormat = fmt
            if let d = f.date(from: text) { return d }
        }
        return nil
    }

    // MARK: logical

    mutating func logical(
        repo: any Repository, pipeline: Pipeline, backup: BackupManifest, policy: DrillPolicy
    ) async throws {
        targetDescription = "every database of logical backup \(backup.id)"
        let t0 = clock.now()
        let (data, tools, user) = (self.data, self.tools, self.user)
        await check("scratch cluster") {
            _ = try await tools.run(
                "initdb", ["-D", data, "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
            return "initdb of a PostgreSQL \(try await tools.majorVersion("initdb")) cluster"
        }
        if failed { return }
        try prepareServer(ssl: false)
        let (folder, conn) = (self.folder, conninfo)
        let clock = self.clock
        await check("start") {
            _ = try await tools.run("pg_ctl", ["-D", data, "-l", folder + "/postgres.log", "-w", "-t", "120", "start"])
            try await Drill.waitForPromotion(conninfo: conn, log: folder + "/postgres.log", timeout: 120, clock: clock)
            return "scratch server running"
        }
        if failed { return }
        let catalog = Catalog(
            info: try RepositoryInfo.require(from: repo), backups: [backup],
            wal: WALArchive(segmentSize: backup.walSegmentSize))
        for (i, db) in (backup.databases ?? []).enumerated() {
            var options = LogicalRestoreOperation.Options(backupId: backup.id, database: db.name, into: db.name)
            options.globals = i == 0
            options.force = db.name == "postgres"
            options.jobs = 2
            options.tempDirectory = folder
            await check("restore \(db.name)") {
                let r = try await LogicalRestoreOperation.run(
                    repo: repo, pipeline: pipeline, catalog: catalog, conninfo: conn,
                    tools: tools, clock: clock, options: options)
                return "\(Units.formatBytes(r.bytes)) dump restored"
            }
        }
        bytes = backup.size
        restoreSeconds = clock.now().timeIntervalSince(t0)
        if failed { return }
        let t1 = clock.now()
        await runChecks(policy: policy)
        checksSeconds = clock.now().timeIntervalSince(t1)
    }

    // MARK: checks common to both kinds

    mutating func runChecks(policy: DrillPolicy) async {
        let (tools, conn, socket, port, user) = (self.tools, conninfo, self.socket, self.port, self.user)
        let databases =
            (try? await Blocking.run {
                try PGConnection(conninfo: conn).query(
                    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
                )
                .compactMap { $0.first ?? nil }
            }) ?? []
        if policy.amcheck {
            await check("pg_amcheck") {
                _ = try await tools.run(
                    "pg_amcheck",
                    [
                        "--host", socket, "--port", String(port), "--username", user, "--all",
                        "--install-missing", "--no-password"
                    ])
                return "tables and B-tree indexes of \(databases.count) database(s) are consistent"
            }
        }
        if policy.readAllTables {
            await check("every table readable") {
                for db in databases {
                    _ = try await tools.run(
                        "pg_dump",
                        [
                            "--data-only", "--file=/dev/null", "--no-password",
                            "--dbname=host=\(socket) port=\(port) user=\(user) dbname=\(Conninfo.quote(db))"
                        ])
                }
                return "read every row (TOAST and large objects included) of \(databases.count) database(s)"
            }
        }
        for a in policy.assertions {
            let targets = a.database == "*" ? databases : [a.database]
            await check("assertion: \(a.name)") {
                for db in targets {
                    let v = try await Blocking.run {
                        try PGConnection(
                            conninfo: "host=\(socket) port=\(port) user=\(user) dbname=\(Conninfo.quote(db))"
                        )
                        .scalar("SELECT (\(a.sql))::boolean")
                    }
                    guard v == "t" else {
                        throw CairnError(
                            .restoreFailed, "in database \(db), \"\(a.sql)\" returned \(v ?? "NULL"), not true")
                    }
                }
                return "true in \(targets.joined(separator: ", "))"
            }
        }
    }
}
