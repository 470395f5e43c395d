import CairnBase
import Foundation

/// Facts about a cluster that the repository records and checks.
public struct ClusterInfo: Sendable, Equatable, Codable {
    /// `pg_control_system().system_identifier`: unique per initdb.
    public var systemIdentifier: String
    /// `server_version_num`, e.g. 150018.
    public var versionNum: Int
    /// WAL segment size in bytes.
    public var walSegmentSize: Int64
    /// `data_directory` as the server reports it (needs superuser or pg_read_all_settings).
    public var dataDirectory: String?

    /// The major version, e.g. 15.
    public var majorVersion: Int { versionNum / 10000 }

    public init(systemIdentifier: String, versionNum: Int, walSegmentSize: Int64, dataDirectory: String?) {
        self.systemIdentifier = systemIdentifier
        self.versionNum = versionNum
        self.walSegmentSize = walSegmentSize
        self.dataDirectory = dataDirectory
    }

    /// Reads the facts over a connection.
    public static func read(_ c: PGConnection) throws -> ClusterInfo {
        let sysid = try c.scalar("SELECT system_identifier::text FROM pg_control_system()") ?? ""
        let segsize = try c.scalar(
            "SELECT setting::bigint * (CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END) FROM pg_settings WHERE name = 'wal_segment_size'"
        )
        let datadir = try? c.scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
        guard c.serverVersion >= 100000 else {
            throw CairnError(
                .pgVersion, "PostgreSQL \(c.serverVersion / 10000) is not supported",
                hint:
                    "cairn backs up PostgreSQL 15 and later (tested on 15 and 18; see the README's supported versions)")
        }
        return ClusterInfo(
            systemIdentifier: sysid, versionNum: c.serverVersion,
            walSegmentSize: Int64(segsize ?? "") ?? 16 << 20, dataDirectory: datadir ?? nil)
    }
}
