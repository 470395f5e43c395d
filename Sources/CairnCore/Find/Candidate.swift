import CairnPostgres
import Foundation

/// A relation `find` named, and where the name came from.
public struct NamedRelation: Sendable, Equatable {
    public var schema: String
    public var name: String
    /// `pg_class.relkind`.
    public var kind: String
    /// `live` (the cluster's catalog now) or `backup <id>` (that backup's relation map).
    public var source: String

    public init(schema: String, name: String, kind: String, source: String) {
        (self.schema, self.name, self.kind, self.source) = (schema, name, kind, source)
    }

    public var qualifiedName: String { "\(schema).\(name)" }
    /// A table or materialized view of the user's (not a catalog, an index, TOAST or a sequence).
    public var isUserTable: Bool {
        ["r", "p", "m"].contains(kind) && schema != "pg_catalog" && schema != "information_schema"
            && !schema.hasPrefix("pg_toast")
    }
}

/// How `find` names file nodes and relation OIDs; implemented by ``NameResolver`` (the live catalog, then the
/// backups' relation maps), and by a table in unit tests.
public protocol RelationNames {
    /// The relation whose storage `ref` is (or was at `time`).
    func relation(_ ref: FileNodeRef, at time: Date) -> NamedRelation?
    /// The relation with OID `oid` in database `database` at `time` (a dropped one: from a backup's map).
    func relation(database: UInt32, oid: UInt32, at time: Date) -> NamedRelation?
}

/// One likely mistake: a table dropped, truncated, or many of its rows deleted or updated by one transaction.
public struct Candidate: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case drop, truncate, delete, update }

    public var kind: Kind
    /// The transaction (top-level xid) and its commit record.
    public var xid: UInt32
    public var lsn: LSN
    public var commitTime: Date
    public var databaseOid: UInt32
    /// The database's name (nil when neither the cluster nor a backup knows it).
    public var database: String?
    /// `schema.name`, nil when the relation is unknown (see `fileNodes`).
    public var table: String?
    /// Where the name came from: `live`, `backup <id>`, or `unknown`.
    public var nameSource: String
    /// The file nodes involved (for an unknown relation, all there is to say).
    public var fileNodes: [UInt32]
    /// Rows deleted or updated (delete, update).
    public var rows: Int?

    enum CodingKeys: String, CodingKey {
        case kind, xid, lsn, database, table, rows, reference
        case commitTime = "commit_time"
        case databaseOid = "database_oid"
        case nameSource = "name_source"
        case fileNodes = "file_nodes"
        case restoreArguments = "restore_arguments"
    }

    public init(
        kind: Kind, xid: UInt32, lsn: LSN, commitTime: Date, databaseOid: UInt32, database: String?, table: String?,
        nameSource: String, fileNodes: [UInt32], rows: Int?
    ) {
        (self.kind, self.xid, self.lsn, self.commitTime, self.databaseOid) = (kind, xid, lsn, commitTime, databaseOid)
        (self.database, self.table, self.nameSource, self.fileNodes, self.rows) = (
            database, table, nameSource, fileNodes, rows
        )
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try c.decode(Kind.self, forKey: .kind), xid: try c.decode(UInt32.self, forKey: .xid),
            lsn: try c.decode(LSN.self, forKey: .lsn), commitTime: try c.decode(Date.self, forKey: .commitTime),
            databaseOid: try c.decode(UInt32.self, forKey: .databaseOid),
            database: try c.decodeIfPresent(String.self, forKey: .database),
            table: try c.decodeIfPresent(String.self, forKey: .table),
            nameSource: try c.decode(String.self, forKey: .nameSource),
            fileNodes: try c.decode([UInt32].self, forKey: .fileNodes),
            rows: try c.decodeIfPresent(Int.self, forKey: .rows))
    }

    /// Also the computed `reference` and `restore_arguments`, for scripts.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(xid, forKey: .xid)
        try c.encode(lsn, forKey: .lsn)
        try c.encode(commitTime, forKey: .commitTime)
        try c.encode(databaseOid, forKey: .databaseOid)
        try c.encodeIfPresent(database, forKey: .database)
        try c.encodeIfPresent(table, forKey: .table)
        try c.encode(nameSource, forKey: .nameSource)
        try c.encode(fileNodes, forKey: .fileNodes)
        try c.encodeIfPresent(rows, forKey: .rows)
        try c.encode(reference, forKey: .reference)
        try c.encode(restoreArguments, forKey: .restoreArguments)
    }

    /// `XID@LSN`: what `cairn restore --table … --before` takes.
    public var reference: String { "\(xid)@\(lsn)" }

    /// The recovery target that stops just before this transaction committed: its commit record's LSN, exclusive.
    /// (An LSN, not the xid: with an LSN `restore` also picks a backup taken before the mistake.)
    public var restoreArguments: [String] { ["--target-lsn", lsn.description, "--target-exclusive"] }
}
