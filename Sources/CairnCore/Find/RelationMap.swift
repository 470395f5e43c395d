import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// Which relation a file node belonged to when a physical backup was taken: `backups/<id>/relations.json.zst`,
/// recorded by `cairn backup` for every database that accepts connections. `cairn find` names a dropped or
/// truncated table with it, since the live catalog no longer knows the old file node.
public struct RelationMap: Codable, Sendable, Equatable {
    /// One relation of a database (tables, indexes, TOAST tables, sequences, materialized views).
    public struct Relation: Codable, Sendable, Equatable {
        public var oid: UInt32
        /// `pg_relation_filenode(oid)`: the file node in WAL records.
        public var fileNode: UInt32
        /// The tablespace's OID (`pg_class.reltablespace`, 0: the database's default).
        public var tablespace: UInt32
        public var schema: String
        public var name: String
        /// `pg_class.relkind`: `r` table, `p` partitioned table, `m` materialized view, `i` index, `t` TOAST, `S` sequence.
        public var kind: String

        enum CodingKeys: String, CodingKey {
            case oid, tablespace, schema, name, kind
            case fileNode = "file_node"
        }

        /// Tables (plain, partitioned) and materialized views: what `find` reports.
        public var isTable: Bool { ["r", "p", "m"].contains(kind) }
        public var qualifiedName: String { "\(schema).\(name)" }
    }

    /// One database's relations.
    public struct Database: Codable, Sendable, Equatable {
        public var oid: UInt32
        public var name: String
        public var relations: [Relation]
    }

    public var format = 1
    /// When the map was read (server time).
    public var taken: Date
    public var databases: [Database]

    public init(taken: Date, databases: [Database]) {
        self.taken = taken
        self.databases = databases
    }

    /// The relation with this file node in database `db`.
    public func relation(database db: UInt32, fileNode: UInt32) -> Relation? {
        databases.first { $0.oid == db }?.relations.first { $0.fileNode == fileNode }
    }

    /// The relation with this OID in database `db`.
    public func relation(database db: UInt32, oid: UInt32) -> Relation? {
        databases.first { $0.oid == db }?.relations.first { $0.oid == oid }
    }

    /// The user relations (OID ≥ 16384, the first one not assigned by initdb) of every database of the cluster.
    /// A database the backup's role cannot connect to is left out with a warning (the backup does not fail for it:
    /// `find` then names that database's tables from the live catalog only).
    public static func read(conninfo: String, clock: any WallClock) throws -> RelationMap {
        let conn = try PGConnection(conninfo: conninfo)
        let rows = try conn.query(
            "SELECT oid, datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")
        let parsed = try Conninfo(conninfo)
        var databases: [Database] = []
        for row in rows {
            guard let oid = row[0].flatMap(UInt32.init), let name = row[1] else { continue }
            do {
                let db = try PGConnection(conninfo: parsed.with(database: name))
                databases.append(Database(oid: oid, name: name, relations: try relations(db)))
            } catch {
                logger.warning(
                    "the relation map leaves out a database cairn cannot read",
                    metadata: ["database": "\(name)", "error": "\(describeError(error).message)"])
            }
        }
        return RelationMap(taken: clock.now(), databases: databases)
    }

    static let logger = Logger(label: "cairn.backup")

    static func relations(_ c: PGConnection) throws -> [Relation] {
        try c.query(
            """
            SELECT c.oid, pg_relation_filenode(c.oid), c.reltablespace, n.nspname, c.relname, c.relkind
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'm', 'i', 't', 'S') AND pg_relation_filenode(c.oid) IS NOT NULL
            ORDER BY c.oid
            """
        ).compactMap { r in
            guard let oid = r[0].flatMap(UInt32.init), let node = r[1].flatMap(UInt32.init),
                let ts = r[2].flatMap(UInt32.init), let schema = r[3], let name = r[4], let kind = r[5]
            else { return nil }
            return Relation(oid: oid, fileNode: node, tablespace: ts, schema: schema, name: name, kind: kind)
        }
    }

    /// Stores the map as `backups/<id>/relations.json.zst` (create-only).
    static func store(
        _ map: RelationMap, backupId: String, repo: any Repository, pipeline: Pipeline
    ) throws
        -> BackupManifest.Object
    {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        let key = Layout.relationMapKey(backupId)
        let digest = try pipeline.store(repo, key: key, bytes: Array(try e.encode(map)), options: .createOnly)
        return BackupManifest.Object(key: key, digest: digest)
    }

    /// Reads a backup's map (verified against its manifest entry).
    public static func load(
        _ object: BackupManifest.Object, repo: any Repository, pipeline: Pipeline
    ) throws
        -> RelationMap
    {
        var bytes = [UInt8]()
        try pipeline.load(repo, key: object.key, expected: object.digest) { bytes.append(contentsOf: $0) }
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        do {
            return try d.decode(RelationMap.self, from: Data(bytes))
        } catch {
            throw CairnError(.repoCorrupt, "the relation map \(object.key) cannot be read", cause: error)
        }
    }
}
