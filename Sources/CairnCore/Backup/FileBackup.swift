import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging
import Synchronization

/// The two ways a physical backup reads the cluster (`cluster.backup_method`).
public enum BackupMethod: String, Sendable, CaseIterable {
    /// Files when the data directory is on this host and readable, stream otherwise.
    case auto
    /// Cairn reads the data directory itself between `pg_backup_start` and `pg_backup_stop`, several files at a
    /// time (as pgBackRest and WAL-G do): PostgreSQL does no extra work and compression runs on every core.
    case files
    /// PostgreSQL sends the files over a replication connection (`BASE_BACKUP`): works from another host.
    case stream
}

/// What a physical backup captured, whichever way it read the cluster.
struct CapturedBackup {
    var archives: [BackupManifest.Archive]
    var pgManifest: BackupManifest.Object?
    var startLSN: LSN
    var startTimeline: UInt32
    var stopLSN: LSN
    var stopTimeline: UInt32

    /// Every object the manifest will reference: the bundles, then the PostgreSQL manifest.
    var objects: [BackupManifest.Object] { archives.flatMap(\.objects) + (pgManifest.map { [$0] } ?? []) }
}

/// A file-level base backup: `pg_backup_start`, the data directory and tablespaces copied in parallel lanes,
/// `global/pg_control` last, then `pg_backup_stop`, whose backup_label joins the last bundle, and a PostgreSQL-format backup_manifest so `pg_verifybackup` checks the restored copy.
enum FileBackup {
    static let logger = Logger(label: "cairn.backup")

    /// The data directory to read, or why the files method cannot be used (then `auto` streams).
    static func usableDataDirectory(_ conn: PGConnection, cluster: ClusterInfo) -> Result<String, CairnError> {
        do {
            return try probe(conn, cluster: cluster)
        } catch {
            let (_, message, _) = describeError(error)
            return .failure(
                CairnError(
                    .pgConfig, "cannot tell where the data directory is: \(message)",
                    hint:
                        "back up as a superuser (or a member of pg_read_all_settings), or set cluster.backup_method: stream",
                    cause: error))
        }
    }

    private static func probe(_ conn: PGConnection, cluster: ClusterInfo) throws -> Result<String, CairnError> {
        let dir = try conn.scalar("SHOW data_directory") ?? ""
        if try conn.scalar("SELECT pg_is_in_recovery()::text") == "true" {
            return .failure(
                CairnError(
                    .pgConfig, "the server is a standby; file-level backups are taken from the primary",
                    hint: "set cluster.backup_method: stream (or auto) to back up a standby"))
        }
        guard
            try conn.scalar("SELECT has_function_privilege('pg_backup_start(text, boolean)', 'EXECUTE')::text")
                == "true",
            try conn.scalar("SELECT has_function_privilege('pg_backup_stop(boolean)', 'EXECUTE')::text") == "true"
        else {
            return .failure(
                CairnError(
                    .pgAuth, "the backup user may not run pg_backup_start and pg_backup_stop",
                    hint:
                        "GRANT EXECUTE ON FUNCTION pg_backup_start, pg_backup_stop TO the backup user, or set cluster.backup_method: stream"
                ))
        }
        let control = dir + "/global/pg_control"
        let fd = open(control, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(
                CairnError(
                    .localIO, "cannot read \(control) on this host: \(String(cString: strerror(errno)))",
                    hint:
                        "run cairn on the database host as the cluster's OS user, or set cluster.backup_method: stream")
            )
        }
        defer { close(fd) }
        var id: UInt64 = 0
        guard read(fd, &id, 8) == 8, String(UInt64(littleEndian: id)) == cluster.systemIdentifier else {
            return .failure(
                CairnError(
                    .pgConfig, "\(dir) on this host is not the data directory of the server cairn connects to",
                    hint: "run cairn on the database host, or set cluster.backup_method: stream"))
        }
        // The same system identifier is not enough: a standby or a copy of the cluster has it too.
        if case .failure(let m) = try LocalServerProof.matches(conn: conn, dataDirectory: dir) {
            return .failure(
                CairnError(
                    .pgConfig, "\(dir) on this host may hold another server's files: \(m.reason)",
                    hint:
                        "run cairn on the host of the server the connection reaches (check VIPs and target_session_attrs), or set cluster.backup_method: stream"
                ))
        }
        return .success(dir)
    }

    /// The WAL summaries' changed blocks for an incremental, or nil (every page is read) when the server has none
    /// for the range or may not show them.
    static func changedBlocks(_ conn: PGConnection, majorVersion: Int, since: LSN, until: LSN) -> ChangedBlocks? {
        do {
            let timeline = UInt32(try conn.scalar("SELECT timeline_id::text FROM pg_control_checkpoint()") ?? "") ?? 0
            return try ChangedBlocks.load(
                conn, majorVersion: majorVersion, timeline: timeline, from: since, to: until, clock: SystemClock())
        } catch {
            logger.info(
                "reading every relation page for the incremental: the WAL summaries cannot be read: \(describeError(error).message)"
            )
            return nil
        }
    }

    /// Copies the data directory and tablespaces between `pg_backup_start` and `pg_backup_stop`; for an
    /// incremental (`parent`), only what changed since the parent (see ``IncrementalParent``).
    static func run(
        conn: PGConnection, dataDirectory: String, majorVersion: Int, parent: IncrementalParent? = nil,
        into target: BackupOperation.BackupTarget
    ) throws -> CapturedBackup {
        let (id, options) = (target.id, target.options)
        guard let startText = try conn.scalar("SELECT pg_backup_start($1, \(options.fastCheckpoint))", ["cairn \(id)"]),
            let startLSN = LSN(startText)
        else {
            throw CairnError(.backupFailed, "pg_backup_start returned no start position")
        }
        let parent = parent.map { p in
            var p = p
            p.changed = changedBlocks(conn, majorVersion: majorVersion, since: p.threshold, until: startLSN)
            return p
        }
        logger.info(
            "reading the data directory", metadata: ["dir": "\(dataDirectory)", "lanes": "\(options.parallelism)"])
        let files = try scan(dataDirectory, majorVersion: majorVersion)
        let total = (files.entries + files.spaces.flatMap(\.entries)).reduce(files.control.size) { $0 + $1.size }
        target.progress.onTotal(total)

        let copiedBytes = Mutex<Int64>(0)  // shared by the lanes of every archive
        let progress = target.progress
        func copier(_ archive: String, tablespace: UInt32?) -> FileCopier {
            FileCopier(
                repo: target.repo, pipeline: target.pipeline, backupId: id, archive: archive,
                bundleSize: options.bundleSize,
                lanes: options.parallelism, parent: parent, manifestPrefix: tablespace.map { "pg_tblspc/\($0)/" } ?? "",
                onBytes: { n in
                    progress.onBytes(
                        copiedBytes.withLock {
                            $0 += n; return $0
                        })
                })
        }
        let base = copier(Layout.archiveName(tablespace: nil), tablespace: nil)
        var copiers: [ArchiveCopier] = [ArchiveCopier(copier: base, oid: nil, location: nil)]
        defer { target.wrote(copiers.flatMap { $0.copier.committedKeys }) }
        try base.copy(files.entries)
        for s in files.spaces {
            let c = copier(Layout.archiveName(tablespace: s.oid), tablespace: s.oid)
            copiers.append(ArchiveCopier(copier: c, oid: s.oid, location: s.location))
            try c.copy(s.entries)
        }
        if let p = parent {
            logger.info(
                "incremental backup read \(Units.formatBytes(copiedBytes.withLock { $0 })) of \(Units.formatBytes(total))",
                metadata: [
                    "parent": "\(p.id)", "changed_blocks": "\(p.changed == nil ? "page-lsn" : "wal-summaries")",
                    "read_bytes": "\(copiedBytes.withLock { $0 })", "total_bytes": "\(total)"
                ])
        }
        let stop = try finishLastBundle(base, control: files.control, conn: conn)
        let pgManifest = try storePGManifest(
            copiers, start: startLSN, stop: stop, majorVersion: majorVersion, conn: conn, into: target)
        return CapturedBackup(
            archives: copiers.map(\.archive), pgManifest: pgManifest,
            startLSN: startLSN, startTimeline: stop.timeline, stopLSN: stop.lsn, stopTimeline: stop.timeline)
    }

    /// The files to copy: the data directory's (without pg_control, copied last) and each tablespace's.
    struct Files {
        var entries: [DataDirectory.Entry]
        var control: DataDirectory.Entry
        var spaces: [(oid: UInt32, location: String, entries: [DataDirectory.Entry])]
    }

    /// Lists the data directory and the tablespaces its pg_tblspc links point to.
    static func scan(_ dataDirectory: String, majorVersion: Int) throws -> Files {
        var entries = try DataDirectory.scan(dataDirectory: dataDirectory)
        let controlIndex = entries.firstIndex { $0.path == "global/pg_control" }
        guard let controlIndex else { throw CairnError(.backupFailed, "\(dataDirectory)/global/pg_control is missing") }
        let control = entries.remove(at: controlIndex)
        var spaces: [(oid: UInt32, location: String, entries: [DataDirectory.Entry])] = []
        for e in entries where e.path.hasPrefix("pg_tblspc/") {
            guard case .symlink(let target) = e.kind, let oid = UInt32(e.path.dropFirst("pg_tblspc/".count)) else {
                continue
            }
            spaces.append((oid, target, try DataDirectory.scan(tablespace: target, majorVersion: majorVersion)))
        }
        return Files(entries: entries, control: control, spaces: spaces)
    }

    /// The copier of one archive (the data directory's, or a tablespace's with its oid and location).
    struct ArchiveCopier {
        var copier: FileCopier
        var oid: UInt32?
        var location: String?

        var archive: BackupManifest.Archive {
            BackupManifest.Archive(
                name: copier.archive, tablespaceOid: oid, location: location, objects: copier.orderedObjects)
        }
    }

    /// The last bundle: pg_control as late as possible, then `pg_backup_stop` and the backup_label it returns.
    /// Returns the stop position and the backup's timeline.
    static func finishLastBundle(
        _ base: FileCopier, control: DataDirectory.Entry, conn: PGConnection
    ) throws -> (lsn: LSN, timeline: UInt32) {
        let last = base.openBundle()
        do {
            try last.add(control)
            let rows = try conn.query("SELECT lsn::text, labelfile FROM pg_backup_stop(false)")
            guard let row = rows.first, row.count == 2, let stopLSN = LSN(row[0] ?? ""), let label = row[1] else {
                throw CairnError(.backupFailed, "pg_backup_stop returned no stop position")
            }
            guard let tliLine = label.split(separator: "\n").first(where: { $0.hasPrefix("START TIMELINE: ") }),
                let timeline = UInt32(tliLine.dropFirst("START TIMELINE: ".count))
            else {
                throw CairnError(.backupFailed, "the backup_label from pg_backup_stop names no timeline")
            }
            let now = Int(Date().timeIntervalSince1970)
            try last.add(path: "backup_label", content: Array(label.utf8), mtime: now)
            // No tablespace_map: the archive holds the pg_tblspc links themselves, which a restore may point
            // elsewhere (--tablespace-map); a tablespace_map file would make recovery recreate the original links.
            try last.close()
            return (stopLSN, timeline)
        } catch {
            last.abort()
            throw error
        }
    }

    /// A PostgreSQL-format backup_manifest of every copied file, so `pg_verifybackup` checks the restored copy.
    static func storePGManifest(
        _ copiers: [ArchiveCopier], start: LSN, stop: (lsn: LSN, timeline: UInt32), majorVersion: Int,
        conn: PGConnection, into target: BackupOperation.BackupTarget
    ) throws -> BackupManifest.Object {
        var files: [FileCopier.Copied] = []
        for c in copiers {
            let prefix = c.oid.map { "pg_tblspc/\($0)/" } ?? ""
            files += c.copier.copied.map {
                var f = $0; f.path = prefix + f.path; return f
            }
        }
        // PostgreSQL 17+ writes manifest version 2, which names the cluster (pg_verifybackup checks it).
        let sysid =
            majorVersion >= 17
            ? try conn.scalar("SELECT system_identifier::text FROM pg_control_system()").flatMap { UInt64($0) } : nil
        let text = PGManifestText.build(
            files: files.sorted { $0.path < $1.path }, timeline: stop.timeline, start: start, stop: stop.lsn,
            systemIdentifier: sysid)
        let key = Layout.pgManifestKey(target.id)
        let digest = try target.pipeline.store(target.repo, key: key, bytes: text, options: .createOnly)
        target.wrote([key])
        return BackupManifest.Object(key: key, digest: digest)
    }
}
