import CFileSync
import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn restore`: lays out a physical backup (every object's digest verified while it streams), writes the
/// recovery settings, and leaves the rest to PostgreSQL, which replays WAL through `cairn wal-fetch`.
public enum RestoreOperation {
    public struct Options: Sendable {
        public var targetDirectory: String
        /// Empty a non-empty target (and tablespace) directory first.
        public var force = false
        /// New locations for tablespaces, by oid.
        public var tablespaceMap: [UInt32: String] = [:]
        /// Turn archiving off in the restored cluster (drills, side-by-side copies).
        public var archiveOff = false
        public var parallelism = 4
        /// `recovery_end_command`, e.g. removing the prefetch spool.
        public var recoveryEndCommand: String?
        /// Restore onto an existing stopped data directory of this cluster, writing only what differs and removing
        /// what the backup does not have (see ``DeltaSummary``). `force` then allows another cluster's directory.
        public var delta = false
        /// Write `standby.signal` and standby settings (`primary_conninfo` when given) instead of a recovery target.
        public var standby = false
        /// The standby's `primary_conninfo` (written to `postgresql.auto.conf`, never echoed).
        public var primaryConninfo: String?
        /// The standby's `primary_slot_name`: the replication slot on the primary that keeps its WAL.
        public var primarySlotName: String?

        public init(targetDirectory: String) { self.targetDirectory = targetDirectory }
    }

    public struct Result: Sendable, Codable {
        public var plan: RecoveryPlan
        public var targetDirectory: String
        public var files: Int
        public var bytes: Int64
        public var seconds: Double
        /// What a delta restore compared, rewrote and removed (nil for a restore into an empty directory).
        public var delta: DeltaSummary?
    }

    static let logger = Logger(label: "cairn.restore")

    /// Checks every target directory (the data directory and each tablespace's) before anything is written or
    /// deleted, then creates or (with `force`) empties them. Refuses, whatever `force` says, a directory that is,
    /// lies inside or contains the data directory or a tablespace of a PostgreSQL server running on this host.
    public static func prepare(_ backup: BackupManifest, options: Options) throws {
        let targets = try targetDirectories(backup, options: options)
        let running = RunningCluster.scan()
        for dir in targets { try checkDirectory(dir, force: options.force, running: running) }
        for dir in targets { try emptyOrCreate(dir) }
    }

    /// Everything that stops a restore, found together before anything is written: the target directories (not
    /// empty, a running cluster's), the backup and target (none, outside the window: what `plan` throws) and the
    /// tablespace map. Returns the plan, or throws one error listing every problem (the first one's code).
    public static func check(
        catalog: Catalog, options: Options, plan makePlan: () throws -> RecoveryPlan
    ) throws -> RecoveryPlan {
        var problems: [any Error] = []
        func record(_ body: () throws -> Void) {
            do { try body() } catch { problems.append(error) }
        }
        let running = RunningCluster.scan()
        let named = [options.targetDirectory] + options.tablespaceMap.keys.sorted().map { options.tablespaceMap[$0]! }
        for dir in named {
            record { try checkDirectory(dir, force: options.force, running: running, delta: options.delta) }
        }
        var plan: RecoveryPlan?
        record { plan = try makePlan() }
        if let plan, let backup = catalog.backup(plan.backupId) {
            record { try checkTablespaceMap(backup, options: options) }
            if options.delta {
                record { try checkDeltaTarget(options.targetDirectory, backup: backup, force: options.force) }
            }
            record {
                for dir in try targetDirectories(backup, options: options) where !named.contains(dir) {
                    record { try checkDirectory(dir, force: options.force, running: running, delta: options.delta) }
                }
            }
        }
        guard problems.isEmpty, let plan else {
            throw CairnError.combining(problems, summary: "stop the restore; nothing was written")
        }
        return plan
    }

    /// Every tablespace `--tablespace-map` names must be one of the backup's.
    static func checkTablespaceMap(_ backup: BackupManifest, options: Options) throws {
        let known = Set(backup.archives.compactMap(\.tablespaceOid))
        let unknown = options.tablespaceMap.keys.filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let has =
                known.isEmpty
                ? "it has no tablespaces"
                : "its tablespaces are \(known.sorted().map(String.init).joined(separator: ", "))"
            throw CairnError(
                .usage,
                "--tablespace-map names tablespace \(unknown.map(String.init).joined(separator: ", ")), which backup \(backup.id) does not have (\(has))",
                hint: "use the OIDs `cairn info` lists for that backup (pg_tablespace.oid)")
        }
    }

    /// The main target directory and each tablespace's (mapped, or its original location).
    static func targetDirectories(_ backup: BackupManifest, options: Options) throws -> [String] {
        var dirs = [options.targetDirectory]
        for a in backup.archives {
            guard let oid = a.tablespaceOid else { continue }
            let dir = options.tablespaceMap[oid] ?? a.location ?? ""
            guard dir.hasPrefix("/") else {
                throw CairnError(
                    .restoreFailed, "tablespace \(oid) has no location to restore to",
                    hint: "pass --tablespace-map \(oid)=/new/location")
            }
            dirs.append(dir)
        }
        return dirs
    }

    /// Restores the plan's backup into the target directory. `onTotal` receives the bytes to write, `onBytes` the
    /// bytes written so far.
    public static func run(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, plan: RecoveryPlan, options: Options,
        clock: any WallClock, onTotal: @Sendable (Int64) -> Void = { _ in },
        onBytes: @escaping @Sendable (Int64) -> Void = { _ in }
    ) throws -> Result {
        let began = clock.now()
        try Interruption.check()
        guard let backup = catalog.backup(plan.backupId) else {
            throw CairnError(.backupNotFound, "no committed backup \(plan.backupId)")
        }
        let chain = try catalog.chain(backup.id)
        try options.delta ? prepareDelta(backup, options: options) : prepare(backup, options: options)
        let root = options.targetDirectory
        var roots: [String: String] = [:]
        for a in backup.archives {
            roots[a.name] = a.tablespaceOid.map { options.tablespaceMap[$0] ?? a.location! } ?? root
        }
        let map = options.tablespaceMap
        let relink: @Sendable (String, String) -> String = { name, target in
            // pg_tblspc/<oid> points at the tablespace: follow a remapped location.
            let parts = name.split(separator: "/")
            if parts.count == 2, parts[0] == "pg_tblspc", let oid = UInt32(parts[1]), let to = map[oid] { return to }
            return target
        }

        let totals = Totals()
        let tally = options.delta ? DeltaTally() : nil
        var summary: DeltaSummary?
        do {
            onTotal(chain.flatMap(\.archives).flatMap(\.objects).reduce(0) { $0 + $1.digest.size })
            if chain.count == 1 && tally == nil {
                try extract(
                    backup, roots: roots, relink: relink, chain: nil, repo: repo, pipeline: pipeline,
                    parallelism: options.parallelism, totals: totals, onBytes: onBytes)
            } else {
                summary = try layOutChain(
                    chain, root: root, roots: roots, relink: relink, repo: repo, pipeline: pipeline,
                    parallelism: options.parallelism, totals: totals, delta: tally, onBytes: onBytes)
            }
        } catch {
            let (code, message, hint) = describeError(error)
            throw CairnError(
                code, "restore into \(root) failed, the directory is incomplete: \(message)",
                hint: hint
                    ?? (options.delta
                        ? "run the same restore with --delta again to complete it"
                        : "delete \(root) and run the restore again"),
                cause: error)
        }
        try Interruption.check()
        if let m = backup.pgManifest {
            try writeFile(root + "/backup_manifest") { fd in
                try pipeline.load(repo, key: m.key, expected: m.digest) { try FileIO.writeAll(fd, $0) }
            }
        }
        for sub in ["pg_wal", "pg_wal/archive_status"] { mkdir(root + "/" + sub, 0o700) }
        // The files are durable before the recovery settings (each written durably) can start PostgreSQL on them.
        syncFileSystems(Set(roots.values).union([root]))
        try writeRecoverySettings(root: root, plan: plan, options: options, clock: clock)
        logger.info("restore laid out", metadata: ["backup": "\(backup.id)", "dir": "\(root)"])
        return Result(
            plan: plan, targetDirectory: root, files: totals.files, bytes: totals.bytes,
            seconds: clock.now().timeIntervalSince(began), delta: summary)
    }

    /// Writes the bundles of `backup` under their archives' roots, several at once, largest first. In a chain
    /// restore, `chain` decides what each file entry still adds and `newest` says whether this is the newest backup.
    static func extract(
        _ backup: BackupManifest, roots: [String: String], relink: @escaping @Sendable (String, String) -> String,
        chain: (files: ChainFiles, newest: Bool)?, repo: any Repository, pipeline: Pipeline, parallelism: Int,
        totals: Totals, delta: DeltaTally? = nil, onBytes: @escaping @Sendable (Int64) -> Void
    ) throws {
        let pool = WorkerPool(threads: parallelism, maxQueued: parallelism, name: "cairn-restore")
        // Largest bundles first, so the long ones do not start last. An archive the restored backup does not have
        // (a tablespace dropped since an older backup of the chain) holds nothing to restore.
        let jobs = backup.archives.filter { roots[$0.name] != nil }.flatMap { a in a.objects.map { (a.name, $0) } }
            .sorted { $0.1.digest.size > $1.1.digest.size }
        for (archive, object) in jobs {
            let dir = roots[archive]!
            let submitted = pool.submit {
                try Interruption.check()
                if let delta, let chain,
                    try deltaWithoutFetching(
                        object, archive: archive, root: dir, chain: chain, repo: repo, tally: delta)
                {
                    onBytes(totals.add(bytes: object.digest.size))
                    return totals.add(files: object.files ?? 0)
                }
                let x = TarExtractor(
                    root: dir, linkTarget: relink, chain: chain.map { ($0.files, archive, $0.newest) }, delta: delta)
                do {
                    try pipeline.load(repo, key: object.key, expected: object.digest, hashContent: false) { buf in
                        try x.feed(buf)
                        onBytes(totals.add(bytes: Int64(buf.count)))
                    }
                    try x.finish()
                } catch let e as CairnError where e.code == .dataCorrupt && !e.message.contains(object.key) {
                    // Damage the tar reader noticed before the object's own checks did: still name the object.
                    throw Pipeline.damaged(object.key, in: repo, e.message)
                }
                totals.add(files: x.files)
            }
            if !submitted { break }
        }
        try pool.wait()
    }

    /// A delta restore's shortcut for one bundle (``DeltaBundleCheck``): true when its files are on disk already, or
    /// were repaired by fetching only their differing frames; false when it must be fetched whole.
    static func deltaWithoutFetching(
        _ object: BackupManifest.Object, archive: String, root: String, chain: (files: ChainFiles, newest: Bool),
        repo: any Repository, tally: DeltaTally
    ) throws -> Bool {
        let check = DeltaBundleCheck(
            root: root, archive: archive, files: chain.files, newest: chain.newest, tally: tally)
        switch try object.contents.map(check.plan) ?? .fetch {
        case .fetch:
            tally.bundle(fetched: true)
            return false
        case .skip:
            tally.bundle(fetched: false)
        case .repair(let repairs):
            for r in repairs { try r.apply(bundle: object.key, repo: repo, tally: tally) }
            chain.files.markComplete(repairs.map(\.key))
            tally.bundle(fetched: false)
        }
        return true
    }

    /// Refuses `dir` when it belongs to a running cluster, is not a directory, or is not empty without `force` (a
    /// `delta` restore takes a non-empty one; ``checkDeltaTarget(_:backup:force:)`` checks whose it is).
    /// Deletes nothing.
    static func checkDirectory(_ dir: String, force: Bool, running: [RunningCluster], delta: Bool = false) throws {
        for cluster in running {
            if let live = cluster.overlap(with: dir) {
                let what = live == cluster.dataDirectory ? "the data directory" : "the tablespace \(live)"
                throw CairnError(
                    .restoreDirNotEmpty,
                    "\(dir) overlaps \(what) of the PostgreSQL server running with pid \(cluster.pid) and data directory \(cluster.dataDirectory)",
                    hint:
                        "stop that server first (pg_ctl stop -D \(cluster.dataDirectory)), or restore its tablespaces elsewhere with --tablespace-map OID=/other/dir"
                )
            }
        }
        var st = stat()
        guard stat(dir, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CairnError(.restoreDirNotEmpty, "\(dir) exists and is not a directory")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        guard !entries.isEmpty else { return }
        guard force || delta else {
            throw CairnError(
                .restoreDirNotEmpty, "\(dir) is not empty (\(entries.count) entries)",
                hint:
                    "restore into an empty directory, pass --delta to rewrite only what differs from the backup, or --force to delete its contents first"
            )
        }
        // The scan above sees only processes this user may inspect: the postmaster.pid check stays.
        if let pidText = try? String(contentsOfFile: dir + "/postmaster.pid", encoding: .utf8),
            let pid = Int32(pidText.split(separator: "\n").first ?? ""), kill(pid, 0) == 0
        {
            throw CairnError(
                .restoreDirNotEmpty, "a PostgreSQL server (pid \(pid)) is running in \(dir)",
                hint: "stop it first (pg_ctl stop -D \(dir)); cairn never restores over a running cluster")
        }
    }

    /// Creates `dir`, or empties it when it exists (after ``checkDirectory(_:force:running:)`` allowed it).
    static func emptyOrCreate(_ dir: String) throws {
        var st = stat()
        if stat(dir, &st) != 0 {
            do {
                try FileManager.default.createDirectory(
                    atPath: dir, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
            } catch {
                throw CairnError(
                    .localIO, "cannot create \(dir): \(error.localizedDescription)",
                    hint:
                        "run the restore as the user that will own the cluster, with write access to the parent folder")
            }
            return
        }
        for e in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            try? FileManager.default.removeItem(atPath: dir + "/" + e)
        }
        chmod(dir, 0o700)
    }

    static func writeFile(_ path: String, _ body: (Int32) throws -> Void) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CairnError(.localIO, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try body(fd)
    }

    /// Flushes the restored files to disk: `syncfs` of each file system the folders are on (not every file
    /// system of the host, as `sync` would: other programs' writes are none of the restore's business), `sync`
    /// where a folder cannot be opened. The writers started the write-back as they went (``WriteBack``), so
    /// little is left to wait for.
    static func syncFileSystems(_ folders: Set<String>) {
        for f in folders.sorted() {
            let fd = open(f, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { return sync() }
            defer { close(fd) }
            if cairn_syncfs(fd) != 0 { sync() }
        }
    }

    final class Totals: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var bytes: Int64 = 0
        private(set) var files = 0
        func add(bytes n: Int64) -> Int64 { lock.lock(); defer { lock.unlock() }; bytes += n; return bytes }
        func add(files n: Int) { lock.lock(); files += n; lock.unlock() }
    }
}
