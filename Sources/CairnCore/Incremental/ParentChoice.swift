import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// Which backup an incremental (`incr`) or differential (`diff`) backup stores the changes since. Where none can
/// serve, the backup is taken as a full one and the reason is logged as a warning (as pgBackRest does): a missed
/// incremental costs time and space, a refused one would leave the day without a backup.
public enum ParentChoice {
    static let logger = Logger(label: "cairn.backup")

    /// The newest backup a `kind` backup of this cluster can build on, or why there is none: `incr` builds on the
    /// newest physical backup, `diff` on the newest full; it must be of the same cluster, major and WAL segment size,
    /// on the cluster's current timeline, and its chain must be complete. Pure: the planner's part.
    public static func choose(
        kind: BackupManifest.Kind, catalog: Catalog, cluster: ClusterInfo, timeline: UInt32
    )
        -> Result<BackupManifest, ParentUnavailable>
    {
        let own = catalog.backups.filter { $0.kind.isPhysical && $0.systemIdentifier == cluster.systemIdentifier }
        guard let newest = (kind == .diff ? own.filter { $0.kind == .full } : own).last else {
            return .failure(
                ParentUnavailable(
                    reason: "there is no \(kind == .diff ? "full" : "physical") backup of this cluster yet"))
        }
        guard newest.pgVersionNum / 10000 == cluster.majorVersion, newest.walSegmentSize == cluster.walSegmentSize
        else {
            return .failure(
                ParentUnavailable(
                    reason:
                        "the newest backup \(newest.id) is of PostgreSQL \(newest.pgVersionNum / 10000), the cluster runs \(cluster.majorVersion)"
                ))
        }
        guard newest.stop.timeline == timeline else {
            return .failure(
                ParentUnavailable(
                    reason:
                        "the newest backup \(newest.id) is on timeline \(newest.stop.timeline) and the cluster on timeline \(timeline) (a promotion since)"
                ))
        }
        if case .failure(let e) = Result(catching: { try catalog.chain(newest.id) }) {
            return .failure(ParentUnavailable(reason: describeError(e).1))
        }
        guard newest.pgManifest != nil else {
            return .failure(
                ParentUnavailable(reason: "the newest backup \(newest.id) has no file list (backup_manifest)"))
        }
        return .success(newest)
    }

    /// Why an incremental or differential backup is taken as a full one.
    public struct ParentUnavailable: Error, Sendable {
        public var reason: String
    }

    /// The parent for a `kind` backup with its file list read from the repository (digest checked), or nil for a
    /// full backup (with the reason logged). `files` says whether the backup reads the data directory itself: the
    /// streamed method takes full backups only. `claim` receives the parent before its file list is read.
    static func parent(
        kind: BackupManifest.Kind, conn: PGConnection, cluster: ClusterInfo, repo: any Repository,
        pipeline: Pipeline, files: Bool, claim: (@Sendable (String) throws -> Void)? = nil
    ) throws -> IncrementalParent? {
        guard kind == .incr || kind == .diff else { return nil }
        try requireFullPageWrites(conn)
        func full(_ why: String) -> IncrementalParent? {
            logger.warning("taking a full backup instead of --type \(kind.rawValue): \(why)")
            return nil
        }
        guard files else {
            return full(
                "incremental backups read the data directory (cluster.backup_method: files), and the server is backed up over a replication connection"
            )
        }
        let timeline = UInt32(try conn.scalar("SELECT timeline_id::text FROM pg_control_checkpoint()") ?? "") ?? 0
        switch choose(kind: kind, catalog: try Catalog.load(from: repo), cluster: cluster, timeline: timeline) {
        case .failure(let why): return full(why.reason)
        case .success(let p):
            // Claimed first, then checked again: an expire that ran meanwhile may have deleted it.
            try claim?(p.id)
            guard try repo.head(Layout.manifestKey(p.id)) != nil else {
                return full("backup \(p.id) was expired meanwhile")
            }
            var bytes: [UInt8] = []
            do {
                try pipeline.load(repo, key: p.pgManifest!.key, expected: p.pgManifest!.digest) {
                    bytes.append(contentsOf: $0)
                }
                return IncrementalParent(id: p.id, threshold: p.start.lsn, files: try PGManifestFiles.parse(bytes))
            } catch {
                return full("the file list of backup \(p.id) cannot be read: \(describeError(error).1)")
            }
        }
    }

    /// Incremental backups trust a page's LSN, which a torn page written without full-page images would not honour.
    static func requireFullPageWrites(_ conn: PGConnection) throws {
        guard try conn.scalar("SHOW full_page_writes") != "off" else {
            throw CairnError(
                .pgConfig,
                "full_page_writes is off, so a page changed during a backup cannot be trusted to be replaced by WAL replay",
                hint: "set full_page_writes = on (the default) and reload, or take full backups (--type full)")
        }
    }
}
