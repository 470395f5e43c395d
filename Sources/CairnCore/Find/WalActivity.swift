import CairnPostgres
import Foundation

/// What the transactions in a stretch of WAL did, as far as `cairn find` cares: rows deleted and updated per
/// relation, storage created, pages written as images, and how each transaction ended. Stretches decoded in
/// parallel are merged (``merge(_:)``); the result does not depend on the order.
public struct WalActivity: Sendable {
    /// One transaction (or subtransaction), by xid.
    public struct Transaction: Sendable, Equatable {
        public var deletes: [FileNodeRef: Int] = [:]
        public var updates: [FileNodeRef: Int] = [:]
        /// Storage created by the transaction.
        public var created: Set<FileNodeRef> = []
        /// Page images written into storage, with the highest block number seen.
        public var pageImages: [FileNodeRef: UInt32] = [:]
        /// Its commit or abort record, and where it is.
        public var end: TransactionEnd?
        public var endLSN: LSN?

        mutating func merge(_ o: Transaction) {
            deletes.merge(o.deletes, uniquingKeysWith: +)
            updates.merge(o.updates, uniquingKeysWith: +)
            created.formUnion(o.created)
            pageImages.merge(o.pageImages, uniquingKeysWith: max)
            if let e = o.end { (end, endLSN) = (e, o.endLSN) }
        }
    }

    public var transactions: [UInt32: Transaction] = [:]
    /// Records read (for the summary).
    public var records = 0

    public init() {}

    /// Adds one decoded record.
    public mutating func add(_ r: WalDumpRecord) {
        records += 1
        guard r.xid != 0 else { return }
        switch r.operation {
        case .delete(let f): transactions[r.xid, default: .init()].deletes[f, default: 0] += 1
        case .update(let f): transactions[r.xid, default: .init()].updates[f, default: 0] += 1
        case .create(let f): transactions[r.xid, default: .init()].created.insert(f)
        case .pageImage(let f, let block):
            transactions[r.xid, default: .init()].pageImages[f] = max(
                block, transactions[r.xid]?.pageImages[f] ?? 0)
        case .end(let e):
            transactions[r.xid, default: .init()].end = e
            transactions[r.xid]?.endLSN = r.lsn
        }
    }

    /// Adds another stretch's activity.
    public mutating func merge(_ other: WalActivity) {
        records += other.records
        for (xid, t) in other.transactions { transactions[xid, default: .init()].merge(t) }
    }

    /// Committed top-level transactions, each with its subtransactions' activity folded in, in commit order.
    public func committed() -> [(xid: UInt32, lsn: LSN, end: TransactionEnd, activity: Transaction)] {
        transactions.compactMap { xid, t -> (UInt32, LSN, TransactionEnd, Transaction)? in
            guard let end = t.end, end.committed, let lsn = t.endLSN else { return nil }
            var all = t
            for sub in end.subtransactions { if let s = transactions[sub], s.end?.committed != false { all.merge(s) } }
            all.end = end
            return (xid, lsn, end, all)
        }
        .sorted { $0.1 < $1.1 }
        .map { (xid: $0.0, lsn: $0.1, end: $0.2, activity: $0.3) }
    }
}
