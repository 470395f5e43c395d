import CairnBase
import Foundation
import Testing

@testable import CairnCore
@testable import CairnPostgres

// Unit tests for Sources/CairnCore/Find (pg_waldump lines captured from PostgreSQL 15 and 18) and the naming of
// Sources/CairnCore/TableRestore.

/// Relations by file node and OID, as a backup's map or the live catalog would name them.
private struct Names: RelationNames {
    var byNode: [UInt32: NamedRelation] = [:]
    var byOID: [UInt32: NamedRelation] = [:]
    func relation(_ ref: FileNodeRef, at time: Date) -> NamedRelation? { byNode[ref.fileNode] }
    func relation(database: UInt32, oid: UInt32, at time: Date) -> NamedRelation? { byOID[oid] }
}

private func table(_ name: String, _ kind: String = "r") -> NamedRelation {
    NamedRelation(schema: "public", name: name, kind: kind, source: "backup 20261203T090000F")
}

/// Parses lines into activity.
private func activity(_ lines: [String]) -> WalActivity {
    var a = WalActivity()
    for l in lines { if let r = WalDumpParser.parse(Substring(l)) { a.add(r) } }
    return a
}

private let head = "len (rec/tot):     54/    54,"

@Suite struct WalDumpParserTests {
    @Test func readsDeletesUpdatesOfBothMajorsAndCommitRecords() throws {
        let delete = WalDumpParser.parse(
            "rmgr: Heap        \(head) tx:        739, lsn: 0/0198AA98, prev 0/0198A770, desc: DELETE off 2 flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/16388/16405 blk 0"
        )
        #expect(delete?.xid == 739)
        #expect(delete?.lsn == LSN("0/0198AA98"))
        #expect(delete?.operation == .delete(FileNodeRef(tablespace: 1663, database: 16388, fileNode: 16405)))
        let update18 = WalDumpParser.parse(
            "rmgr: Heap        len (rec/tot):     69/    69, tx:        755, lsn: 0/01753F60, prev 0/01753C40, desc: HOT_UPDATE old_xmax: 755, old_off: 1, old_infobits: [], flags: 0x20, new_xmax: 0, new_off: 21, blkref #0: rel 1663/5/16402 blk 0"
        )
        #expect(update18?.operation == .update(FileNodeRef(tablespace: 1663, database: 5, fileNode: 16402)))
        let commit = try #require(
            WalDumpParser.parse(
                "rmgr: Transaction len (rec/tot):   1701/  1701, tx:        737, lsn: 0/019842F8, prev 0/019842C0, desc: COMMIT 2026-12-03 08:54:49.715043 UTC; rels: base/16388/16390 base/16388/16389; dropped stats: 2/16388/16390 2/16388/16389; inval msgs: catcache 32"
            ))
        guard case .end(let end) = commit.operation else { Issue.record("not an end: \(commit)"); return }
        #expect(end.committed)
        #expect(abs(end.time.timeIntervalSince1970 - 1_796_288_089.715043) < 0.000_01)
        #expect(end.droppedFiles.map(\.fileNode) == [16390, 16389])
        #expect(end.droppedRelations == [.init(database: 16388, oid: 16390), .init(database: 16388, oid: 16389)])
        let sub = WalDumpParser.parse(
            "rmgr: Transaction len (rec/tot):     46/    46, tx:        741, lsn: 0/019A0258, prev 0/019A0220, desc: COMMIT 2026-12-03 08:54:50.854581 UTC; subxacts: 742"
        )
        if case .end(let e)? = sub?.operation { #expect(e.subtransactions == [742]) } else { Issue.record("no commit") }
    }

    @Test func ignoresOtherRecordsAndTemporaryRelations() {
        #expect(
            WalDumpParser.parse("rmgr: Btree       \(head) tx: 9, lsn: 0/01000028, prev 0/0, desc: INSERT_LEAF off 2")
                == nil)
        #expect(WalDumpParser.parse("pg_waldump: first record is after 0/01000000, at 0/01000028") == nil)
        #expect(FileNodeRef(path: "base/5/t3_16384") == nil)
        #expect(WalDumpParser.mayMatter(Array("rmgr: Heap        len (rec/tot): 54/54, tx: 1".utf8)[...]))
        #expect(!WalDumpParser.mayMatter(Array("rmgr: Heap2       len (rec/tot): 54/54, tx: 1".utf8)[...]))
        #expect(!WalDumpParser.mayMatter(Array("rmgr: Btree       len (rec/tot): 54/54, tx: 1".utf8)[...]))
        #expect(FileNodeRef(path: "pg_tblspc/16500/PG_15_202209061/5/16384")?.tablespace == 16500)
    }
}

@Suite struct MistakeClassifierTests {
    let time = "2026-12-03 08:54:49.715043 UTC"

    func commit(_ xid: Int, _ lsn: String, _ tail: String = "") -> String {
        "rmgr: Transaction \(head) tx: \(xid), lsn: \(lsn), prev 0/0, desc: COMMIT \(time)\(tail)"
    }

    @Test func aDropIsNamedByOIDAndItsIndexesAreNotReported() {
        let a = activity([
            commit(737, "0/019842F8", "; rels: base/5/16390 base/5/16394; dropped stats: 2/5/16390 2/5/16394")
        ])
        let names = Names(byOID: [16390: table("orders"), 16394: table("orders_pkey", "i")])
        let c = MistakeClassifier.candidates(a, minRows: 1000, names: names)
        #expect(c.map(\.kind) == [.drop])
        #expect(c.first?.table == "public.orders")
        #expect(c.first?.restoreArguments == ["--target-lsn", "0/19842F8", "--target-exclusive"])
        #expect(c.first?.reference == "737@0/19842F8")
    }

    @Test func aTruncateCreatesStorageAndWritesOnlyIndexMetapages() {
        let a = activity([
            "rmgr: Storage     \(head) tx: 738, lsn: 0/019849D0, prev 0/0, desc: CREATE base/5/16410",
            "rmgr: Storage     \(head) tx: 738, lsn: 0/019849E0, prev 0/0, desc: CREATE base/5/16413",
            "rmgr: XLOG        \(head) tx: 738, lsn: 0/0198A570, prev 0/0, desc: FPI , blkref #0: rel 1663/5/16413 blk 0 FPW",
            commit(738, "0/0198A600", "; rels: base/5/16398 base/5/16402")
        ])
        let names = Names(byNode: [
            16398: table("events"), 16402: table("events_pkey", "i"), 16413: table("events_pkey", "i")
        ])
        let c = MistakeClassifier.candidates(a, minRows: 1000, names: names)
        #expect(c.map(\.kind) == [.truncate])
        #expect(c.first?.table == "public.events")
    }

    @Test func aRewriteIsNoTruncate() {
        let a = activity([
            "rmgr: Storage     \(head) tx: 740, lsn: 0/0198AF48, prev 0/0, desc: CREATE base/5/16414",
            "rmgr: XLOG        \(head) tx: 740, lsn: 0/0198AF58, prev 0/0, desc: FPI , blkref #0: rel 1663/5/16414 blk 3 FPW",
            commit(740, "0/0199F840", "; rels: base/5/16405; dropped stats: 2/5/16414")
        ])
        let c = MistakeClassifier.candidates(a, minRows: 1000, names: Names(byNode: [16405: table("c")]))
        #expect(c.isEmpty, "VACUUM FULL: \(c)")
    }

    @Test func manyDeletesInOneTransactionAndItsSubtransactionsCountTogether() {
        var lines: [String] = []
        for i in 0..<6 {
            let xid = i < 3 ? 741 : 742
            lines.append(
                "rmgr: Heap        \(head) tx: \(xid), lsn: 0/0200\(i)000, prev 0/0, desc: DELETE off \(i + 1) flags 0x00 , blkref #0: rel 1663/5/16405 blk 0"
            )
        }
        lines.append(
            "rmgr: Heap        \(head) tx: 743, lsn: 0/02010000, prev 0/0, desc: DELETE off 9 flags 0x00 , blkref #0: rel 1663/5/16405 blk 0"
        )
        lines.append(commit(741, "0/02020000", "; subxacts: 742"))
        lines.append("rmgr: Transaction \(head) tx: 743, lsn: 0/02030000, prev 0/0, desc: ABORT \(time)")
        let names = Names(byNode: [16405: table("accounts")])
        let c = MistakeClassifier.candidates(activity(lines), minRows: 6, names: names)
        #expect(c.map(\.kind) == [.delete])
        #expect(c.first?.rows == 6)
        #expect(MistakeClassifier.candidates(activity(lines), minRows: 7, names: names).isEmpty)
    }
}

@Suite struct FindPlanTests {
    @Test func chunksCoverTheRangeAndNameTheGaps() throws {
        let size: Int64 = 16 << 20
        let t0 = Date(timeIntervalSince1970: 1_790_000_000)
        var wal = WALArchive(segmentSize: size)
        for n in UInt64(1)...12 where n != 8 {
            let name = WALSegment(timeline: 1, number: n, segmentSize: size).name
            wal.segments[1, default: [:]][n] = .init(
                file: .segment(name), key: "wal/00000001/\(name).zst", storedSize: 1,
                stored: t0.addingTimeInterval(Double(n) * 60))
        }
        let cluster = ClusterInfo(systemIdentifier: "1", versionNum: 150_018, walSegmentSize: size, dataDirectory: "/d")
        let catalog = Catalog(
            info: RepositoryInfo(cluster: cluster, created: t0, cairnVersion: "t"), backups: [], wal: wal)
        let plan = try FindPlan.make(catalog, since: t0.addingTimeInterval(150), until: t0.addingTimeInterval(630))
        #expect(plan.chunks.map { $0.segments.map(\.number) } == [[3, 4, 5, 6], [7], [9, 10, 11]])
        #expect(plan.chunks.map { $0.next?.number } == [7, nil, 12])
        #expect(plan.missing == [WALSegment(timeline: 1, number: 8, segmentSize: size).name])
        let all = try FindPlan.make(catalog, since: nil, until: nil)
        #expect(all.segmentCount == 11)
        #expect(throws: CairnError.self) {
            try FindPlan.make(catalog, since: t0.addingTimeInterval(-9000), until: t0.addingTimeInterval(-8000))
        }
    }
}

@Suite struct TableNamingTests {
    @Test func restoredNamesFitAndAvoidTheLiveNames() {
        #expect(TableNaming.restored("orders", stamp: "20261203091500") == "orders_restored_20261203091500")
        let long = String(repeating: "x", count: 60)
        #expect(TableNaming.restored(long, stamp: "20261203091500").utf8.count == 63)
        let r = TableNaming.renames(
            ["orders_pkey", "orders_v", "orders_id_seq"],
            taken: ["orders_pkey", "orders_id_seq", "orders_pkey_restored_1"],
            stamp: "1")
        #expect(r == ["orders_pkey": "orders_pkey_restored_1_1", "orders_id_seq": "orders_id_seq_restored_1"])
        #expect(TableNaming.stamp(Date(timeIntervalSince1970: 1_796_288_089)) == "20261203085449")
    }
}
