import CairnPostgres
import Foundation

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
