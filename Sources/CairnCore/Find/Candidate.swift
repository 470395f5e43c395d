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

/// Turns decoded WAL activity into candidates (pure).
public enum MistakeClassifier {
    /// Every candidate in `activity`: for each committed transaction, the tables it dropped, the tables whose storage
    /// it replaced without writing their rows back (TRUNCATE; VACUUM FULL, CLUSTER and other rewrites are left out),
    /// and each table of which it deleted or updated at least `minRows` rows.
    public static func candidates(_ activity: WalActivity, minRows: Int, names: any RelationNames) -> [Candidate] {
        activity.committed().flatMap { t in
            let base = Candidate(
                kind: .drop, xid: t.xid, lsn: t.lsn, commitTime: t.end.time, databaseOid: 0, database: nil,
                table: nil, nameSource: "unknown", fileNodes: [], rows: nil)
            let (drops, droppedNodes) = dropped(t.end, base: base, names: names)
            return drops + truncated(t.end, t.activity, skipping: droppedNodes, base: base, names: names)
                + rows(t.activity, minRows: minRows, base: base, at: t.end.time, names: names)
        }
    }

    /// Tables whose statistics the commit dropped (dropped relations), and the file nodes that belonged to the
    /// dropped relations. Relations no map knows are reported together, as one unknown drop, when their OID is also
    /// a dropped file node (a relation never rewritten), which leaves out the transient tables of a VACUUM FULL.
    static func dropped(
        _ end: TransactionEnd, base: Candidate, names: any RelationNames
    ) -> ([Candidate], Set<FileNodeRef>) {
        var out: [Candidate] = []
        var nodes = Set<FileNodeRef>()
        var unknown: [FileNodeRef] = []
        for d in end.droppedRelations {
            if let n = names.relation(database: d.database, oid: d.oid, at: end.time) {
                nodes.formUnion(
                    end.droppedFiles.filter { names.relation($0, at: end.time) == n || $0.fileNode == d.oid })
                if n.isUserTable { out.append(named(base, .drop, database: d.database, n, nodes: [d.oid])) }
            } else if let f = end.droppedFiles.first(where: { $0.database == d.database && $0.fileNode == d.oid }) {
                nodes.insert(f)
                unknown.append(f)
            }
        }
        if out.isEmpty, let first = unknown.first {
            var c = base
            (c.databaseOid, c.fileNodes) = (first.database, unknown.map(\.fileNode).sorted())
            out.append(c)
        }
        return (out, nodes)
    }

    /// Tables whose old storage the commit dropped while the table lives on, with new storage created in the same
    /// transaction that received no table pages: a TRUNCATE.
    static func truncated(
        _ end: TransactionEnd, _ t: WalActivity.Transaction, skipping: Set<FileNodeRef>, base: Candidate,
        names: any RelationNames
    ) -> [Candidate] {
        let replaced = end.droppedFiles.filter { !skipping.contains($0) }
        guard !replaced.isEmpty, !t.created.isEmpty, !rewrote(t, names: names, at: end.time) else { return [] }
        var seen = Set<String>()
        var out: [Candidate] = []
        // The old file nodes by the maps; the new ones by the live catalog (a table created after the last backup).
        for f in replaced + t.created.sorted() {
            guard let n = names.relation(f, at: end.time), n.isUserTable, seen.insert(n.qualifiedName).inserted
            else { continue }
            out.append(named(base, .truncate, database: f.database, n, nodes: [f.fileNode]))
        }
        if out.isEmpty, replaced.allSatisfy({ names.relation($0, at: end.time) == nil }), let first = replaced.first {
            var c = base
            (c.kind, c.databaseOid, c.fileNodes) = (.truncate, first.database, replaced.map(\.fileNode).sorted())
            out.append(c)
        }
        return out
    }

    /// A rewrite (VACUUM FULL, CLUSTER, REINDEX of a filled index) writes the new storage as page images: beyond the
    /// first block, or a table's first block. A TRUNCATE writes at most the first block (metapage) of each index.
    static func rewrote(_ t: WalActivity.Transaction, names: any RelationNames, at time: Date) -> Bool {
        t.pageImages.contains { ref, block in
            t.created.contains(ref) && (block > 0 || names.relation(ref, at: time).map { $0.kind != "i" } ?? false)
        }
    }

    /// Tables of which the transaction deleted or updated at least `minRows` rows.
    static func rows(
        _ t: WalActivity.Transaction, minRows: Int, base: Candidate, at time: Date, names: any RelationNames
    ) -> [Candidate] {
        var out: [Candidate] = []
        for (kind, counts) in [(Candidate.Kind.delete, t.deletes), (.update, t.updates)] {
            for (f, n) in counts.sorted(by: { $0.key < $1.key }) where n >= minRows {
                let named = names.relation(f, at: time)
                if let named, !named.isUserTable { continue }
                if named == nil && f.fileNode < 16384 { continue }  // a system catalog
                var c = named.map { self.named(base, kind, database: f.database, $0, nodes: [f.fileNode]) } ?? base
                (c.kind, c.databaseOid, c.rows) = (kind, f.database, n)
                if named == nil { c.fileNodes = [f.fileNode] }
                out.append(c)
            }
        }
        return out
    }

    static func named(
        _ base: Candidate, _ kind: Candidate.Kind, database: UInt32, _ n: NamedRelation, nodes: [UInt32]
    )
        -> Candidate
    {
        var c = base
        (c.kind, c.databaseOid, c.table, c.nameSource, c.fileNodes) = (kind, database, n.qualifiedName, n.source, nodes)
        return c
    }
}
