import CairnPostgres
import Foundation

/// A relation's storage as WAL names it: tablespace, database and file node (`rel 1663/16384/16390`,
/// `base/16384/16390`).
public struct FileNodeRef: Hashable, Sendable, Codable, Comparable {
    public var tablespace: UInt32
    public var database: UInt32
    public var fileNode: UInt32

    public init(tablespace: UInt32, database: UInt32, fileNode: UInt32) {
        self.tablespace = tablespace
        self.database = database
        self.fileNode = fileNode
    }

    public static func < (a: FileNodeRef, b: FileNodeRef) -> Bool {
        (a.database, a.fileNode, a.tablespace) < (b.database, b.fileNode, b.tablespace)
    }

    /// `1663/16384/16390` (a block reference).
    init?(blockRef s: Substring) {
        let p = s.split(separator: "/")
        guard p.count == 3, let t = UInt32(p[0]), let d = UInt32(p[1]), let f = UInt32(p[2]) else { return nil }
        self.init(tablespace: t, database: d, fileNode: f)
    }

    /// `base/16384/16390` or `pg_tblspc/16500/PG_15_202209061/16384/16390` (a relation path). Temporary relations
    /// (`t3_16390`) and shared ones (`global/…`) are nil: they are not what `find` looks for.
    init?(path s: Substring) {
        let p = s.split(separator: "/")
        if p.count == 3, p[0] == "base", let d = UInt32(p[1]), let f = UInt32(p[2]) {
            self.init(tablespace: 1663, database: d, fileNode: f)
        } else if p.count == 5, p[0] == "pg_tblspc", let t = UInt32(p[1]), let d = UInt32(p[3]), let f = UInt32(p[4]) {
            self.init(tablespace: t, database: d, fileNode: f)
        } else {
            return nil
        }
    }
}

/// One line of `pg_waldump` output, reduced to what `find` needs.
public struct WalDumpRecord: Sendable, Equatable {
    public enum Operation: Sendable, Equatable {
        /// A heap row deleted, or updated (`UPDATE`, `HOT_UPDATE`), in the relation of block reference 0.
        case delete(FileNodeRef)
        case update(FileNodeRef)
        /// A relation's storage created (`Storage CREATE`): a new table, or a TRUNCATE / rewrite's new file node.
        case create(FileNodeRef)
        /// A whole page written as an image (`XLOG FPI`): index builds and table rewrites (VACUUM FULL, CLUSTER).
        case pageImage(FileNodeRef, block: UInt32)
        /// A transaction's end.
        case end(TransactionEnd)
    }

    public var xid: UInt32
    public var lsn: LSN
    public var operation: Operation
}

/// A commit or abort record: its time, subtransactions, the file nodes it drops and the relations whose
/// statistics it drops (PostgreSQL 15 and later: the relations dropped, by OID).
public struct TransactionEnd: Sendable, Equatable {
    public var committed: Bool
    public var time: Date
    public var subtransactions: [UInt32]
    public var droppedFiles: [FileNodeRef]
    /// `dropped stats: 2/16384/16390`: (database, OID) of relations (statistics kind 2).
    public var droppedRelations: [DroppedRelation]
}

/// A relation a transaction dropped, from its commit record's dropped statistics.
public struct DroppedRelation: Hashable, Sendable {
    public var database: UInt32
    public var oid: UInt32
}

/// Parses `pg_waldump` lines (PostgreSQL 15–18 formats; run with `TZ=UTC`). Pure.
public enum WalDumpParser {
    /// A cheap test on a line's bytes: false for records of resource managers `find` never uses (B-tree, Heap2, …),
    /// most of the output, before it is decoded as text.
    public static func mayMatter(_ line: ArraySlice<UInt8>) -> Bool {
        let at = line.startIndex + 6
        guard line.count > 20, line[line.startIndex] == UInt8(ascii: "r") else { return false }
        return interesting.contains { name in
            name.count <= line.count - 6 && zip(name, line[at...]).allSatisfy { $0 == $1 }
        }
    }

    static let interesting: [[UInt8]] = ["Heap ", "Storage ", "XLOG ", "Transaction "].map { Array($0.utf8) }

    /// The record of one output line, or nil for a record `find` does not use.
    public static func parse(_ line: Substring) -> WalDumpRecord? {
        guard line.hasPrefix("rmgr: "), let descRange = line.range(of: "desc: ") else { return nil }
        let rmgr = line.dropFirst(6).prefix { $0 != " " }
        guard ["Heap", "Storage", "XLOG", "Transaction"].contains(rmgr) else { return nil }
        let head = line[..<descRange.lowerBound]
        guard let xid = field(head, "tx:").flatMap({ UInt32($0) }),
            let lsn = field(head, "lsn:").flatMap({ LSN(String($0.dropLast($0.hasSuffix(",") ? 1 : 0))) })
        else { return nil }
        let desc = line[descRange.upperBound...]
        let op = desc.prefix { $0 != " " && $0 != ";" }
        guard let operation = operation(rmgr: rmgr, op: op, desc: desc) else { return nil }
        return WalDumpRecord(xid: xid, lsn: lsn, operation: operation)
    }

    static func operation(rmgr: Substring, op: Substring, desc: Substring) -> WalDumpRecord.Operation? {
        switch (rmgr, op) {
        case ("Heap", "DELETE"): return blockRef(desc).map { .delete($0.0) }
        case ("Heap", "UPDATE"), ("Heap", "HOT_UPDATE"): return blockRef(desc).map { .update($0.0) }
        case ("Storage", "CREATE"):
            return FileNodeRef(path: desc.dropFirst(7).prefix { $0 != " " }).map { .create($0) }
        case ("XLOG", "FPI"): return blockRef(desc).map { .pageImage($0.0, block: $0.1) }
        case ("Transaction", "COMMIT"), ("Transaction", "ABORT"):
            return transactionEnd(desc, committed: op == "COMMIT").map { .end($0) }
        default: return nil
        }
    }

    /// The value after `name` in the record's header (`tx:        737,` → `737`).
    static func field(_ head: Substring, _ name: String) -> Substring? {
        guard let r = head.range(of: name) else { return nil }
        let rest = head[r.upperBound...].drop { $0 == " " }
        let value = rest.prefix { $0 != " " && $0 != "," }
        return value.isEmpty ? nil : value
    }

    /// `blkref #0: rel 1663/16384/16390 blk 12`.
    static func blockRef(_ desc: Substring) -> (FileNodeRef, UInt32)? {
        guard let r = desc.range(of: "blkref #0: rel ") else { return nil }
        let rest = desc[r.upperBound...]
        let rel = rest.prefix { $0 != " " && $0 != "," }
        guard let ref = FileNodeRef(blockRef: rel) else { return nil }
        var block: UInt32 = 0
        if let b = rest.range(of: " blk ") {
            block = UInt32(rest[b.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        return (ref, block)
    }

    /// `COMMIT 2026-12-03 08:54:49.715043 UTC; rels: base/5/16384; dropped stats: 2/5/16384; subxacts: 742`.
    static func transactionEnd(_ desc: Substring, committed: Bool) -> TransactionEnd? {
        let parts = desc.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = parts.first,
            let time = parseTime(first.split(separator: " ").dropFirst().joined(separator: " "))
        else { return nil }
        var end = TransactionEnd(
            committed: committed, time: time, subtransactions: [], droppedFiles: [], droppedRelations: [])
        for part in parts.dropFirst() {
            let words = part.split(separator: " ")
            if part.hasPrefix("rels: ") {
                end.droppedFiles = words.dropFirst().compactMap { FileNodeRef(path: $0) }
            } else if part.hasPrefix("dropped stats: ") {
                end.droppedRelations = words.dropFirst(2).compactMap { w in
                    let p = w.split(separator: "/")
                    guard p.count == 3, p[0] == "2", let d = UInt32(p[1]), let o = UInt32(p[2]) else { return nil }
                    return DroppedRelation(database: d, oid: o)
                }
            } else if part.hasPrefix("subxacts: ") {
                end.subtransactions = words.dropFirst().compactMap { UInt32($0) }
            }
        }
        return end
    }

    /// `2026-12-03 08:54:49.715043 UTC` (pg_waldump prints commit times in its own zone: cairn runs it with TZ=UTC).
    static func parseTime(_ s: String) -> Date? {
        let words = s.split(separator: " ")
        guard words.count >= 3, words[2] == "UTC" else { return nil }
        let d = words[0].split(separator: "-").compactMap { Int($0) }
        let t = words[1].split(separator: ":")
        guard d.count == 3, t.count == 3, let h = Int(t[0]), let m = Int(t[1]), let sec = Double(t[2]) else {
            return nil
        }
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (d[0], d[1], d[2], h, m, 0)
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.date(from: c)?.addingTimeInterval(sec)
    }
}
