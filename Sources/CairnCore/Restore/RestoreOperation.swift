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

        public init(targetDirectory: String) { self.targetDirectory = targetDirectory }
    }

    public struct Result: Sendable, Codable {
        public var plan: RecoveryPlan
        public var targetDirectory: String
        public var files: Int
        public var bytes: Int64
        public var seconds: Double
    }

    static let logger = Logger(label: "cairn.restore")

    /// Checks the target directories before anything is written.
    public static func prepare(_ backup: BackupManifest, options: Options) throws {
        try prepareDirectory(options.targetDirectory, force: options.force)
        for a in backup.archives where a.tablespaceOid != nil {
            let dir = options.tablespaceMap[a.tablespaceOid!] ?? a.location ?? ""
            guard dir.hasPrefix("/") else {
                throw CoreError(.restoreFailed, "tablespace \(a.tablespaceOid!) has no location to restore to",
                                hint: "pass --tablespace-map \(a.tablespaceOid!)=/new/location")
            }
            try prepareDirectory(dir, force: options.force)
        }
    }

    /// Restores the plan's backup into the target directory. `onTotal` receives the bytes to write, `onBytes` the
    /// bytes written so far.
    public static func run(repo: any Repository, pipeline: Pipeline, catalog: Catalog, plan: RecoveryPlan, options: Options,
                           clock: any WallClock, onTotal: @Sendable (Int64) -> Void = { _ in },
                           onBytes: @escaping @Sendable (Int64) -> Void = { _ in }) throws -> Result {
        let began = clock.now()
        try Interruption.check()
        guard let backup = catalog.backup(plan.backupId) else {
            throw CoreError(.backupNotFound, "no committed backup \(plan.backupId)")
        }
        try prepare(backup, options: options)
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
        let pool = WorkerPool(threads: options.parallelism, maxQueued: options.parallelism, name: "cairn-restore")
        // Largest bundles first, so the long ones do not start last.
        let jobs = backup.archives.flatMap { a in a.objects.map { (a.name, $0) } }
            .sorted { $0.1.digest.size > $1.1.digest.size }
        onTotal(jobs.reduce(0) { $0 + $1.1.digest.size })
        for (archive, object) in jobs {
            let dir = roots[archive]!
            let submitted = pool.submit {
                try Interruption.check()
                let x = TarExtractor(root: dir, linkTarget: relink)
                do {
                    try pipeline.load(repo, key: object.key, expected: object.digest, hashContent: false) { buf in
                        try x.feed(buf)
                        onBytes(totals.add(bytes: Int64(buf.count)))
                    }
                    try x.finish()
                } catch let e as CoreError where e.code == .dataCorrupt && !e.message.contains(object.key) {
                    // Damage the tar reader noticed before the object's own checks did: still name the object.
                    throw CoreError(.dataCorrupt, "object \(object.key) in \(repo.location) is damaged: \(e.message)",
                                    hint: Pipeline.damageHint)
                }
                totals.add(files: x.files)
            }
            if !submitted { break }
        }
        do {
            try pool.wait()
        } catch {
            let (code, message, hint) = describeError(error)
            throw CoreError(code, "restore into \(root) failed, the directory is incomplete: \(message)",
                            hint: hint ?? "delete \(root) and run the restore again")
        }
        try Interruption.check()
        if let m = backup.pgManifest {
            try writeFile(root + "/backup_manifest") { fd in
                try pipeline.load(repo, key: m.key, expected: m.digest) { try FileIO.writeAll(fd, $0) }
            }
        }
        for sub in ["pg_wal", "pg_wal/archive_status"] { mkdir(root + "/" + sub, 0o700) }
        try writeRecoverySettings(root: root, plan: plan, options: options, clock: clock)
        syncFileSystem(root)
        logger.info("restore laid out", metadata: ["backup": "\(backup.id)", "dir": "\(root)"])
        return Result(plan: plan, targetDirectory: root, files: totals.files, bytes: totals.bytes,
                      seconds: clock.now().timeIntervalSince(began))
    }

    /// Appends the recovery settings to `postgresql.auto.conf` and creates `recovery.signal`.
    static func writeRecoverySettings(root: String, plan: RecoveryPlan, options: Options, clock: any WallClock) throws {
        var lines = ["", "# Recovery settings written by cairn restore at \(Timestamp.format(clock.now())): backup \(plan.backupId), target \(plan.target)"]
        var settings = plan.settings
        if let end = options.recoveryEndCommand { settings.append(.init(name: "recovery_end_command", value: end)) }
        if options.archiveOff { settings.append(.init(name: "archive_mode", value: "off")) }
        // PostgreSQL's configuration parser reads backslash escapes inside quotes: double them, as ALTER SYSTEM does.
        for s in settings {
            lines.append("\(s.name) = '\(s.value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''"))'")
        }
        let text = lines.joined(separator: "\n") + "\n"
        let conf = root + "/postgresql.auto.conf"
        let fd = open(conf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError(.localIO, "cannot open \(conf): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try text.utf8CString.dropLast().withUnsafeBytes { try FileIO.writeAll(fd, $0) }
        try writeFile(root + "/recovery.signal") { _ in }
    }

    static func prepareDirectory(_ dir: String, force: Bool) throws {
        var st = stat()
        if stat(dir, &st) != 0 {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw CoreError(.localIO, "cannot create \(dir): \(error.localizedDescription)",
                                hint: "run the restore as the user that will own the cluster, with write access to the parent folder")
            }
            return
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CoreError(.restoreDirNotEmpty, "\(dir) exists and is not a directory")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        if !entries.isEmpty {
            guard force else {
                throw CoreError(.restoreDirNotEmpty, "\(dir) is not empty (\(entries.count) entries)",
                                hint: "restore into an empty directory, or pass --force to delete its contents first")
            }
            if let pidText = try? String(contentsOfFile: dir + "/postmaster.pid", encoding: .utf8),
               let pid = Int32(pidText.split(separator: "\n").first ?? ""), kill(pid, 0) == 0 {
                throw CoreError(.restoreDirNotEmpty, "a PostgreSQL server (pid \(pid)) is running in \(dir)",
                                hint: "stop it first (pg_ctl stop -D \(dir)); cairn never restores over a running cluster")
            }
            for e in entries { try? FileManager.default.removeItem(atPath: dir + "/" + e) }
        }
        chmod(dir, 0o700)
    }

    static func writeFile(_ path: String, _ body: (Int32) throws -> Void) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError(.localIO, "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try body(fd)
    }

    /// Flushes the restored files to disk before PostgreSQL starts on them.
    static func syncFileSystem(_ path: String) { sync() }

    final class Totals: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var bytes: Int64 = 0
        private(set) var files = 0
        func add(bytes n: Int64) -> Int64 { lock.lock(); defer { lock.unlock() }; bytes += n; return bytes }
        func add(files n: Int) { lock.lock(); files += n; lock.unlock() }
    }
}
