import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn backup` (physical): a base backup (read from the data directory, or streamed over a replication
/// connection) cut into bundles, a PostgreSQL backup_manifest kept, the WAL the backup needs awaited in the
/// repository, and `manifest.json` written last.
public enum BackupOperation {
    public struct Options: Sendable {
        /// Start with an immediate checkpoint (otherwise a spread checkpoint can take minutes).
        public var fastCheckpoint = true
        /// Uncompressed bytes per bundle.
        public var bundleSize: Int64 = 64 << 20
        /// How long to wait for the backup's WAL to reach the repository.
        public var walTimeout: Double = 600
        /// How the cluster's files are read.
        public var method: BackupMethod = .auto
        /// Files copied at once by the files method.
        public var parallelism = 4
        /// `full`, `incr` or `diff` (see ``ParentChoice`` for when an incremental becomes a full backup).
        public var kind: BackupManifest.Kind = .full
        /// Called with the parent an incremental chose, before its file list is read: the caller claims the
        /// parent's chain (a lease) so a concurrent `expire` keeps it.
        public var onParent: (@Sendable (String) throws -> Void)?
        /// Called after everything is stored and checked, just before the manifest is written: a failure (the
        /// job's lock turned out to be another run's) deletes what this backup wrote and commits nothing.
        public var beforeCommit: (@Sendable () throws -> Void)?
        public init() {}
    }

    /// Progress callbacks for the terminal.
    public struct Progress: Sendable {
        public var onBytes: @Sendable (Int64) -> Void
        public var onPhase: @Sendable (String) -> Void
        /// The expected total of `onBytes`, when known (an estimate).
        public var onTotal: @Sendable (Int64) -> Void
        public init(
            onBytes: @escaping @Sendable (Int64) -> Void = { _ in },
            onPhase: @escaping @Sendable (String) -> Void = { _ in },
            onTotal: @escaping @Sendable (Int64) -> Void = { _ in }
        ) {
            self.onBytes = onBytes
            self.onPhase = onPhase
            self.onTotal = onTotal
        }
    }

    static let logger = Logger(label: "cairn.backup")

    /// Takes a full physical backup. Nothing is committed unless every step succeeds; see ``BackupCommit`` for
    /// what is kept when the commit itself fails.
    public static func run(
        repo: any Repository, pipeline: Pipeline, conninfo: String, clock: any WallClock,
        options: Options = Options(), progress: Progress = Progress()
    ) throws -> BackupManifest {
        let began = clock.now()
        let conn = try PGConnection(conninfo: conninfo)
        let cluster = try checkCluster(conn, repo: repo)
        let startTime = try serverTime(conn)
        let dataDirectory = try chooseDataDirectory(conn, cluster: cluster, method: options.method)
        let parent = try ParentChoice.parent(
            kind: options.kind, conn: conn, cluster: cluster, repo: repo, pipeline: pipeline,
            files: dataDirectory != nil, claim: options.onParent)
        let kind = parent == nil ? .full : options.kind
        let id = try newBackupId(repo: repo, clock: clock, type: kind.idLetter)
        logger.info(
            "backup started",
            metadata: [
                "id": "\(id)", "method": "\(dataDirectory == nil ? "stream" : "files")",
                "type": "\(kind.rawValue)", "parent": "\(parent?.id ?? "none")"
            ])
        progress.onPhase("\(dataDirectory == nil ? "streaming" : "copying") base backup \(id)")

        let target = BackupTarget(id: id, repo: repo, pipeline: pipeline, options: options, progress: progress)
        let captured: CapturedBackup
        var manifest: BackupManifest
        do {
            if let dataDirectory {
                captured = try FileBackup.run(
                    conn: conn, dataDirectory: dataDirectory, majorVersion: cluster.majorVersion,
                    parent: parent, into: target)
            } else {
                captured = try stream(conninfo: conninfo, into: target)
            }
            manifest = try awaitConsistency(
                captured, conn: conn, cluster: cluster, id: id, startTime: startTime, began: began,
                repo: repo, clock: clock, options: options, progress: progress)
            (manifest.kind, manifest.parent) = (kind, parent?.id)
            manifest.relations = try storeRelationMap(conninfo: conninfo, target: target, clock: clock)
            try options.beforeCommit?()
        } catch {
            cleanup(repo: repo, keys: target.written)
            throw wrap(error, id: id)
        }
        let objects = captured.objects + (manifest.relations.map { [$0] } ?? [])
        try BackupCommit.commit(manifest, objects: objects, repo: repo, written: target.written)
        logger.info("backup committed", metadata: ["id": "\(id)", "bytes": "\(manifest.size)"])
        return manifest
    }

    /// The cluster is this repository's, PostgreSQL 15 or later, and its WAL can reach the repository
    /// (wal_level above minimal, archive_mode on).
    static func checkCluster(_ conn: PGConnection, repo: any Repository) throws -> ClusterInfo {
        let cluster = try ClusterInfo.read(conn)
        let info = try RepositoryInfo.require(from: repo)
        try info.checkBelongs(to: cluster, repo: repo)
        guard cluster.majorVersion >= 15 else {
            throw CairnError(
                .pgVersion, "physical backups need PostgreSQL 15 or later (the cluster runs \(cluster.majorVersion))",
                hint: "upgrade the cluster to PostgreSQL 15 or later (tested: 15 and 18)")
        }
        let walLevel = try conn.scalar("SHOW wal_level") ?? ""
        let archiveMode = try conn.scalar("SHOW archive_mode") ?? ""
        guard walLevel != "minimal" else {
            throw CairnError(
                .pgConfig, "wal_level is minimal, so the WAL cannot restore a base backup",
                hint: "set wal_level = replica in postgresql.conf and restart PostgreSQL")
        }
        guard archiveMode != "off" else {
            throw CairnError(
                .pgConfig, "archive_mode is off, so the WAL this backup needs would never reach the repository",
                hint:
                    "set archive_mode = on and archive_command = 'cairn wal-push %p' (with --config if needed), then restart PostgreSQL"
            )
        }
        return cluster
    }

    /// The data directory to read the files from, or nil to stream the backup (`auto` streams when the files
    /// method cannot be used, saying why).
    static func chooseDataDirectory(_ conn: PGConnection, cluster: ClusterInfo, method: BackupMethod) throws -> String?
    {
        switch method {
        case .stream: return nil
        case .files: return try FileBackup.usableDataDirectory(conn, cluster: cluster).get()
        case .auto:
            switch FileBackup.usableDataDirectory(conn, cluster: cluster) {
            case .success(let dir): return dir
            case .failure(let why):
                logger.info("streaming the backup: \(why.message)")
                return nil
            }
        }
    }

    /// Checks the timeline, waits for the backup's WAL to reach the repository and describes the backup.
    @inline(never)  // inlined into run(), its archiver closure crashes the optimizer of Swift 6.3.1 (CopyPropagation)
    static func awaitConsistency(
        _ captured: CapturedBackup, conn: PGConnection, cluster: ClusterInfo, id: String, startTime: Date,
        began: Date, repo: any Repository, clock: any WallClock, options: Options,
        progress: Progress
    ) throws -> BackupManifest {
        guard captured.startTimeline == captured.stopTimeline else {
            throw CairnError(
                .backupFailed,
                "the timeline changed during the backup (\(captured.startTimeline) → \(captured.stopTimeline))",
                hint: "a promotion happened while the backup ran; take the backup again")
        }
        let stopTime = try serverTime(conn)
        let seg = cluster.walSegmentSize
        let start = BackupManifest.Point(
            lsn: captured.startLSN, timeline: captured.startTimeline, time: startTime,
            wal: WALSegment(timeline: captured.startTimeline, lsn: captured.startLSN, segmentSize: seg).name)
        let stop = BackupManifest.Point(
            lsn: captured.stopLSN, timeline: captured.stopTimeline, time: stopTime,
            wal: WALSegment(timeline: captured.stopTimeline, lsn: captured.stopLSN, segmentSize: seg).name)
        progress.onPhase("waiting for WAL \(start.wal)…\(stop.wal) to reach the repository")
        try awaitWAL(
            repo: repo, from: WALSegment(timeline: start.timeline, lsn: start.lsn, segmentSize: seg),
            through: WALSegment(timeline: stop.timeline, lsn: stop.lsn, segmentSize: seg),
            clock: clock, timeout: options.walTimeout,
            archived: { try? conn.scalar("SELECT last_archived_wal FROM pg_stat_archiver") })
        let all = captured.objects
        return BackupManifest(
            format: BackupManifest.currentFormat, id: id, kind: .full, systemIdentifier: cluster.systemIdentifier,
            pgVersionNum: cluster.versionNum, walSegmentSize: seg, start: start, stop: stop,
            archives: captured.archives,
            pgManifest: captured.pgManifest, size: all.reduce(0) { $0 + $1.digest.size },
            storedSize: all.reduce(0) { $0 + $1.digest.storedSize },
            durationSeconds: clock.now().timeIntervalSince(began), cairnVersion: CairnVersion.current,
            host: ProcessInfo.processInfo.hostName, databases: nil, globals: nil)
    }

    /// Records which relation each file node belongs to (every database), for `cairn find` (``RelationMap``).
    static func storeRelationMap(
        conninfo: String, target: BackupTarget, clock: any WallClock
    ) throws
        -> BackupManifest.Object
    {
        target.progress.onPhase("recording the relation map")
        let map = try RelationMap.read(conninfo: conninfo, clock: clock)
        target.wrote([Layout.relationMapKey(target.id)])
        return try RelationMap.store(map, backupId: target.id, repo: target.repo, pipeline: target.pipeline)
    }

    /// Streams the base backup over a replication connection (`BASE_BACKUP`), cutting each archive into bundles.
    static func stream(conninfo: String, into target: BackupTarget) throws -> CapturedBackup {
        let (repo, pipeline, id, options, progress) = (
            target.repo, target.pipeline, target.id, target.options, target.progress
        )
        var writers: [(archive: String, oid: UInt32?, location: String?, writer: BundleWriter)] = []
        var archives: [BackupManifest.Archive] = []
        var manifestStream: StoreStream?
        var pgManifest: BackupManifest.Object?
        var bytes: Int64 = 0
        let stream = try BaseBackupStream(conninfo: conninfo)
        func finishCurrentArchive() throws {
            guard let w = writers.last else { return }
            let objects = try w.writer.finish()
            archives.append(
                BackupManifest.Archive(name: w.archive, tablespaceOid: w.oid, location: w.location, objects: objects))
        }
        defer { target.wrote(writers.flatMap(\.writer.objects).map(\.key) + (pgManifest.map { [$0.key] } ?? [])) }
        do {
            let result = try stream.run(label: "cairn \(id)", fastCheckpoint: options.fastCheckpoint) { event in
                switch event {
                case .archive(let name, let location):
                    try finishCurrentArchive()
                    writers.append(archiveWriter(name, location: location, target: target))
                case .data(let buf):
                    if let m = manifestStream {
                        try m.write(buf)
                    } else {
                        guard let w = writers.last else {
                            throw CairnError(.backupFailed, "backup data arrived before any archive")
                        }
                        try w.writer.write(buf)
                        bytes += Int64(buf.count)
                        progress.onBytes(bytes)
                    }
                case .manifestStart:
                    try finishCurrentArchive()
                    manifestStream = try pipeline.beginStore(repo, key: Layout.pgManifestKey(id), options: .createOnly)
                case .estimate(let total):
                    progress.onTotal(total)
                case .progress:
                    break
                }
            }
            if let m = manifestStream {
                pgManifest = BackupManifest.Object(key: m.key, digest: try m.finish())
                manifestStream = nil
            } else {
                try finishCurrentArchive()
            }
            return CapturedBackup(
                archives: archives, pgManifest: pgManifest, startLSN: result.startLSN,
                startTimeline: result.startTimeline, stopLSN: result.stopLSN, stopTimeline: result.stopTimeline)
        } catch {
            for w in writers { w.writer.abort() }
            manifestStream?.abort()
            throw error
        }
    }

    /// The bundle writer of a streamed archive (`base.tar`, or `<oid>.tar` for a tablespace).
    static func archiveWriter(
        _ name: String, location: String?, target: BackupTarget
    ) -> (archive: String, oid: UInt32?, location: String?, writer: BundleWriter) {
        let base = name.hasSuffix(".tar") ? String(name.dropLast(4)) : name
        let oid = UInt32(base)
        let archive = Layout.archiveName(tablespace: oid)
        let writer = BundleWriter(
            repo: target.repo, pipeline: target.pipeline, backupId: target.id, archive: archive,
            bundleSize: target.options.bundleSize)
        return (archive, oid, location, writer)
    }

    /// One physical backup as it is written: its id, where and how it is stored, and the keys it has stored so far
    /// (a failed backup removes exactly those).
    final class BackupTarget {
        let id: String
        let repo: any Repository
        let pipeline: Pipeline
        let options: Options
        let progress: Progress
        private(set) var written: [String] = []

        init(id: String, repo: any Repository, pipeline: Pipeline, options: Options, progress: Progress) {
            self.id = id
            self.repo = repo
            self.pipeline = pipeline
            self.options = options
            self.progress = progress
        }

        /// Records keys this backup stored.
        func wrote(_ keys: [String]) { written += keys }
    }

    /// A fresh id: the start time, moved on by a second while objects already use it.
    static func newBackupId(repo: any Repository, clock: any WallClock, type: Character = "F") throws -> String {
        var t = clock.now()
        for _ in 0..<10 {
            let id = Layout.backupId(at: t, type: type)
            if try repo.list(prefix: Layout.backupPrefix(id)).isEmpty { return id }
            t = t.addingTimeInterval(1)
        }
        throw CairnError(.backupFailed, "could not find a free backup id near \(Timestamp.format(clock.now()))")
    }

    static func serverTime(_ c: PGConnection) throws -> Date {
        let s = try c.scalar("SELECT extract(epoch FROM clock_timestamp())::text") ?? ""
        guard let v = Double(s) else { throw CairnError(.pgQuery, "could not read the server's clock") }
        return Date(timeIntervalSince1970: v)
    }

    /// Waits until every segment from `first` through `last` is in the repository, asking it at growing intervals
    /// (50 ms, up to 2 s). Between two asks, `archived` (PostgreSQL's `last_archived_wal`, read every 20 ms) cuts
    /// the interval short when the archiver reports another file, so the segment that completes the backup is
    /// seen as soon as its upload is confirmed rather than up to half an interval later.
    static func awaitWAL(
        repo: any Repository, from first: WALSegment, through last: WALSegment,
        clock: any WallClock, timeout: Double, archived: () -> String? = { nil }
    ) throws {
        let deadline = clock.now().addingTimeInterval(timeout)
        var next = first
        var delay = 0.05
        var seen = archived()
        while true {
            while next <= last, try repo.head(Layout.walKey(.segment(next.name))) != nil { next = next.next }
            if next > last { return }
            if clock.now() >= deadline {
                throw CairnError(
                    .walMissing,
                    "WAL segment \(next.name), needed to make this backup consistent, did not reach the repository within \(Units.formatDuration(timeout))",
                    hint:
                        "check that archive_command runs `cairn wal-push %p` and look for archiver failures in pg_stat_archiver and the server log"
                )
            }
            let ask = clock.now().addingTimeInterval(delay)
            while clock.now() < ask {
                clock.sleep(seconds: 0.02)
                let now = archived()
                if now != seen {
                    seen = now
                    break
                }
            }
            delay = min(delay * 1.5, 2)
        }
    }

    /// Best-effort removal of the objects a failed backup stored itself (anything left is garbage for `expire`).
    /// Only what this run wrote: an object it found already there belongs to someone else.
    static func cleanup(repo: any Repository, keys: [String]) {
        guard !keys.isEmpty else { return }
        try? repo.delete(keys)
    }

    static func wrap(_ error: any Error, id: String) -> any Error {
        let (code, message, hint) = describeError(error)
        return CairnError(code, "backup \(id) failed and was not committed: \(message)", hint: hint, cause: error)
    }
}
