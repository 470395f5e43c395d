import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// Records which timelines are production's, from what Cairn can prove (see ``Lineage``).
public enum TimelineWitness {
    static let logger = Logger(label: "cairn.lineage")

    /// The timeline the server `conn` reaches is on now: its current WAL file's on a primary (right after a
    /// promotion too), the last checkpoint's on a standby.
    public static func currentTimeline(_ conn: PGConnection) throws -> UInt32? {
        let sql = """
            SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::text
                        ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END
            """
        guard let v = try conn.scalar(sql) else { return nil }
        return v.count == 8 ? UInt32(v, radix: 16) : UInt32(v)
    }

    /// `cairn init` and `cairn backup`: the cluster `cluster.connection` reaches is production by configuration,
    /// so its timeline is production's. Refuses when the repository records that timeline as a copy's: the
    /// configuration then points at a copy, or production was moved there without saying so.
    public static func confirmProduction(
        _ timeline: UInt32, repo: any Repository, clock: any WallClock,
        decidedBy: String
    ) throws {
        if let r = try TimelineRecord.read(timeline, from: repo) {
            guard r.verdict == .copy else { return }
            throw CairnError(
                .repoAmbiguousHistory,
                "the cluster cluster.connection reaches is on timeline \(timeline), which the repository records as a copy's (\(r.decidedBy) on \(r.host) at \(Timestamp.format(r.at)): \(r.reason))",
                hint:
                    "if this cluster is production now, record it with `cairn timeline adopt \(timeline)`; otherwise point cluster.connection at production (runbooks/side-restore.md)"
            )
        }
        try TimelineRecord.write(
            TimelineRecord(
                timeline: timeline, verdict: .production, decidedBy: decidedBy,
                reason: "the cluster cluster.connection reaches was on this timeline",
                at: clock.now()), to: repo, replace: false)
    }

    /// `wal-push` of timeline `timeline`'s history file (a promotion): decides whether the server that archived
    /// it — the one whose data directory is `dataDirectory`, the archiver's working directory — is production,
    /// by asking the server `conninfo` reaches. Production when that is the same cluster (a local connection to
    /// the server whose data directory is this one); a copy when it is provably another running cluster on this
    /// host; otherwise nothing is recorded and the timeline stays undecided until a backup on it or an operator
    /// says what it is. `dataDirectory` nil (the file was not in a data directory's `pg_wal`) decides nothing.
    /// Never fails the push: the history file is archived either way.
    public static func witnessPromotion(
        timeline: UInt32, dataDirectory: String?, conninfo: String,
        repo: any Repository, clock: any WallClock
    ) {
        do {
            guard try TimelineRecord.read(timeline, from: repo) == nil else { return }
            guard let dataDirectory else {
                logger.warning(
                    "timeline \(timeline) stays undecided: its history file was not archived from a data directory's pg_wal, so which cluster promoted cannot be told; a backup on it or `cairn timeline adopt|mark-copy \(timeline)` decides"
                )
                return
            }
            guard let (verdict, reason) = try judgePusher(dataDirectory: dataDirectory, conninfo: conninfo) else {
                return
            }
            let r = try TimelineRecord.write(
                TimelineRecord(
                    timeline: timeline, verdict: verdict, decidedBy: "wal-push",
                    reason: reason, at: clock.now()), to: repo, replace: false)
            let level: Logger.Level = r.verdict == .copy ? .warning : .info
            logger.log(
                level: level,
                "timeline \(timeline) recorded as \(r.verdict.rawValue == "copy" ? "a copy's" : "production's"): \(r.reason)"
            )
        } catch {
            logger.warning(
                "timeline \(timeline) stays undecided: cannot tell whether the cluster that archived its history is production (\(describeError(error).message)); a backup on it or `cairn timeline adopt|mark-copy \(timeline)` decides"
            )
        }
    }

    /// The data directory a WAL file PostgreSQL (or an operator) asks to archive lives in: the parent of its
    /// `pg_wal` folder, resolved against the working directory (the archiver runs in the data directory and
    /// passes `pg_wal/<file>`). Nil when the file is not in a data directory's `pg_wal`.
    public static func dataDirectory(ofWALPath path: String) -> String? {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let wal = (absolute as NSString).deletingLastPathComponent
        guard (wal as NSString).lastPathComponent == "pg_wal" else { return nil }
        let dir = (wal as NSString).deletingLastPathComponent
        return access(dir + "/global/pg_control", F_OK) == 0 ? dir : nil
    }

    /// Production or copy, with the evidence; nil when it cannot be proven either way. Production: the server
    /// `conninfo` reaches is the postmaster of `dataDirectory` (its `postmaster.pid` names that server's port and
    /// start time, see ``LocalServerProof``). A copy: over a local connection, that server runs from another data
    /// directory on this host.
    static func judgePusher(dataDirectory: String, conninfo: String) throws -> (TimelineRecord.Verdict, String)? {
        let conn = try PGConnection(conninfo: conninfo, overrides: ["connect_timeout": "5"])
        let row = try conn.query("SELECT inet_server_addr()::text, current_setting('data_directory', true)").first ?? []
        let address = row.first ?? nil
        let local = address == nil || address == "127.0.0.1/32" || address == "::1/128"
        let mine = realpath(dataDirectory)
        if local, case .success = try LocalServerProof.matches(conn: conn, dataDirectory: dataDirectory) {
            return (.production, "archived by the cluster cluster.connection reaches (data directory \(mine))")
        }
        guard local, let serverDir = row.count > 1 ? row[1] : nil, realpath(serverDir) != mine else {
            logger.warning(
                "which cluster archived the history cannot be proven: cluster.connection reaches \(local ? "a server this host cannot match to \(mine)" : "\(address ?? "?") over the network")"
            )
            return nil
        }
        return (
            .copy,
            "archived by the cluster in \(mine), while cluster.connection reaches the one in \(realpath(serverDir)) on this host"
        )
    }

    static func realpath(_ path: String) -> String {
        guard let p = Glibc.realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }
}
