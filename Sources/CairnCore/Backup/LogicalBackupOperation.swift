import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging
import Synchronization

/// `cairn backup --type logical`: `pg_dump -Fc` of each database (its own compression off: Cairn's zstd does it)
/// and `pg_dumpall --globals-only`, streamed into the repository; `manifest.json` last, in the same catalog as
/// physical backups.
public enum LogicalBackupOperation {
    public struct Options: Sendable {
        /// Databases to dump; empty means every database that accepts connections (templates excluded).
        public var databases: [String] = []
        public init() {}
    }

    static let logger = Logger(label: "cairn.backup")

    public static func run(
        repo: any Repository, pipeline: Pipeline, conninfo: String, tools: ToolRunner,
        clock: any WallClock, options: Options = Options(),
        progress: BackupOperation.Progress = .init()
    ) async throws -> BackupManifest {
        let began = clock.now()
        let parsed = try Conninfo(conninfo)
        let (conn, cluster, dbs, start) = try await Blocking.run {
            () -> (PGConnection, ClusterInfo, [(String, Int64)], BackupManifest.Point) in
            let conn = try PGConnection(conninfo: conninfo)
            let cluster = try ClusterInfo.read(conn)
            let info = try RepositoryInfo.require(from: repo)
            try info.checkBelongs(to: cluster, repo: repo)
            let all = try conn.query(
                "SELECT datname, pg_database_size(oid)::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
            )
            .map { ($0[0] ?? "", Int64($0[1] ?? "") ?? 0) }
            var chosen = all
            if !options.databases.isEmpty {
                let missing = options.databases.filter { d in !all.contains { $0.0 == d } }
                guard missing.isEmpty else {
                    throw CairnError(
                        .backupFailed,
                        "database \(missing.map { "\"\($0)\"" }.joined(separator: ", ")) does not exist or does not accept connections",
                        hint: "the cluster has: \(all.map(\.0).joined(separator: ", "))")
                }
                chosen = options.databases.compactMap { d in all.first { $0.0 == d } }
            }
            return (conn, cluster, chosen, try point(conn, segmentSize: cluster.walSegmentSize))
        }
        let tools = try await tools.matching(major: cluster.majorVersion, ["pg_dump", "pg_dumpall"], for: "the cluster")
        let id = try await Blocking.run { try BackupOperation.newBackupId(repo: repo, clock: clock, type: "L") }
        logger.info("logical backup started", metadata: ["id": "\(id)", "databases": "\(dbs.count)"])

        var written: [String] = []
        var committing = false
        do {
            progress.onPhase("dumping roles and tablespaces")
            let (gConn, gEnv) = parsed.forTool(database: nil)
            let globals = try await dump(
                tool: "pg_dumpall", ["--globals-only", "--dbname=\(gConn)"], env: gEnv,
                key: Layout.globalsKey(id), repo: repo, pipeline: pipeline, tools: tools)
            written.append(globals.key)
            var databases: [BackupManifest.LogicalDatabase] = []
            var total: Int64 = 0
            for (name, size) in dbs {
                progress.onPhase("dumping database \(name)")
                let snapshot = try await Blocking.run { try BackupOperation.serverTime(conn) }
                let (c, env) = parsed.forTool(database: name)
                let object = try await dump(
                    tool: "pg_dump", ["--format=custom", "--compress=0", "--dbname=\(c)"], env: env,
                    key: Layout.dumpKey(id, database: name), repo: repo, pipeline: pipeline, tools: tools)
                written.append(object.key)
                databases.append(.init(name: name, object: object, snapshotTime: snapshot, databaseSize: size))
                total += object.digest.size
                progress.onBytes(total)
            }
            let stop = try await Blocking.run { try point(conn, segmentSize: cluster.walSegmentSize) }
            let all = databases.map(\.object) + [globals]
            let manifest = BackupManifest(
                format: BackupManifest.currentFormat, id: id, kind: .logical,
                systemIdentifier: cluster.systemIdentifier,
                pgVersionNum: cluster.versionNum, walSegmentSize: cluster.walSegmentSize, start: start, stop: stop,
                archives: [], pgManifest: nil, size: all.reduce(0) { $0 + $1.digest.size },
                storedSize: all.reduce(0) { $0 + $1.digest.storedSize },
                durationSeconds: clock.now().timeIntervalSince(began),
                cairnVersion: CairnVersion.current, host: ProcessInfo.processInfo.hostName,
                databases: databases, globals: globals)
            committing = true
            try await Blocking.run { [written] in
                try BackupCommit.commit(manifest, objects: all, repo: repo, written: written)
            }
            logger.info("logical backup committed", metadata: ["id": "\(id)", "bytes": "\(manifest.size)"])
            return manifest
        } catch {
            // The commit step cleans up (or deliberately keeps the data) itself.
            if committing { throw error }
            await Blocking.runIgnoringErrors { [written] in BackupOperation.cleanup(repo: repo, keys: written) }
            throw BackupOperation.wrap(error, id: id)
        }
    }

    /// Streams a tool's standard output into one object.
    static func dump(
        tool: String, _ args: [String], env: [String: String], key: String, repo: any Repository,
        pipeline: Pipeline, tools: ToolRunner
    ) async throws -> BackupManifest.Object {
        let stored = Mutex(false)
        do {
            let digest = try await tools.runReadingOutput(tool, args, environment: env) { fd in
                let d = try pipeline.store(repo, key: key, fd: fd, options: .createOnly)
                stored.withLock { $0 = true }
                return d
            }
            return BackupManifest.Object(key: key, digest: digest)
        } catch {
            // The tool failed after its (truncated) output was stored: that object is ours to remove.
            if stored.withLock({ $0 }) { await Blocking.runIgnoringErrors { try? repo.delete([key]) } }
            throw error
        }
    }

    static func point(_ c: PGConnection, segmentSize: Int64) throws -> BackupManifest.Point {
        let row = try c.query(
            "SELECT pg_current_wal_lsn()::text, (SELECT timeline_id FROM pg_control_checkpoint())::text")
        let lsn = LSN(row.first?[0] ?? "") ?? LSN(0)
        let tli = UInt32(row.first?[1] ?? "") ?? 1
        return BackupManifest.Point(
            lsn: lsn, timeline: tli, time: try BackupOperation.serverTime(c),
            wal: WALSegment(timeline: tli, lsn: lsn, segmentSize: segmentSize).name)
    }
}
