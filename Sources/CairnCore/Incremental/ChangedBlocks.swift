import CairnBase
import CairnPostgres
import Foundation
import Logging

/// The relation blocks changed between an incremental's parent and its own start, from the server's WAL summaries
/// (PostgreSQL 17 and later with `summarize_wal = on`): with them an incremental reads only those blocks of a
/// relation, instead of every page to look at its LSN.
///
/// Memory: one bit per block from the start of each changed relation to its highest changed block (at most 16 KiB
/// per GiB of relation), whatever the number of changes.
public final class ChangedBlocks: @unchecked Sendable {
    /// A relation's main fork: tablespace, database and file node, as the summaries name it.
    struct Relation: Hashable {
        var tablespace: UInt32
        var database: UInt32
        var node: UInt32
    }

    private var bits: [Relation: [UInt64]] = [:]
    /// The smallest length a relation was truncated to since the parent (blocks from there on are all new).
    private var limits: [Relation: UInt32] = [:]
    /// Databases created since the parent (their files are new, whatever their names).
    private var createdDatabases: Set<[UInt32]> = []

    /// How to read one relation segment.
    public enum Selection: Equatable, Sendable {
        /// Store it whole (its database was created since the parent, or it was truncated below this segment).
        case whole
        /// Read only these blocks (relative to the segment, ascending).
        case blocks([UInt32])
    }

    static let segmentBlocks: Int64 = 131_072  // RELSEG_SIZE: 1 GiB of 8 KiB blocks

    init() {}

    /// Records one row of `pg_wal_summary_contents` for a main fork.
    func add(tablespace: UInt32, database: UInt32, node: UInt32, block: UInt32, isLimit: Bool) {
        if node == 0 {
            createdDatabases.insert([tablespace, database])
            return
        }
        let r = Relation(tablespace: tablespace, database: database, node: node)
        if isLimit {
            limits[r] = min(limits[r] ?? UInt32.max, block)
            return
        }
        let word = Int(block / 64)
        if bits[r] == nil { bits[r] = [] }
        if bits[r]!.count <= word { bits[r]!.append(contentsOf: repeatElement(0, count: word + 1 - bits[r]!.count)) }
        bits[r]![word] |= 1 << UInt64(block % 64)
    }

    /// The relation a manifest path names (`base/<db>/<node>[.N]`, `global/<node>[.N]`,
    /// `pg_tblspc/<oid>/PG_…/<db>/<node>[.N]`) and the segment number; nil for anything else.
    static func relation(_ path: String) -> (Relation, segment: Int64)? {
        guard RelationBlocks.isMainFork(path) else { return nil }
        let parts = path.split(separator: "/")
        let file = parts.last!.split(separator: ".")
        guard let node = UInt32(file[0]) else { return nil }
        let segment = file.count > 1 ? Int64(file[1]) ?? 0 : 0
        switch parts[0] {
        case "global": return (Relation(tablespace: 1664, database: 0, node: node), segment)
        case "base": return UInt32(parts[1]).map { (Relation(tablespace: 1663, database: $0, node: node), segment) }
        default:
            guard let spc = UInt32(parts[1]), let db = UInt32(parts[3]) else { return nil }
            return (Relation(tablespace: spc, database: db, node: node), segment)
        }
    }

    /// Which blocks of the relation segment at `path` (of `size` bytes now, `parentBlocks` blocks at the parent) an
    /// incremental must store: those the summaries name, those past the parent's length, and those at or past a
    /// length the relation was truncated to. nil when `path` is no relation segment.
    public func selection(path: String, size: Int64, parentBlocks: Int64) -> Selection? {
        guard let (r, segment) = Self.relation(path) else { return nil }
        if createdDatabases.contains([r.tablespace, r.database]) { return .whole }
        let first = segment * Self.segmentBlocks
        let count = size / Int64(RelationBlocks.blockSize)
        var from = parentBlocks  // relative: everything from here on is stored
        if let limit = limits[r] {
            if Int64(limit) <= first { return .whole }
            from = min(from, Int64(limit) - first)
        }
        var out: [UInt32] = []
        let words = bits[r] ?? []
        for rel in 0..<min(from, count) {
            let abs = first + rel
            let w = Int(abs / 64)
            if w < words.count && words[w] & (1 << UInt64(abs % 64)) != 0 { out.append(UInt32(rel)) }
        }
        if from < count { out += (from..<count).map { UInt32($0) } }
        return .blocks(out)
    }
}

extension ChangedBlocks {
    static let logger = Logger(label: "cairn.backup")

    /// The blocks changed on `timeline` from `from` (the parent's start) to `to` (this backup's start), read from
    /// the server's WAL summaries once the summarizer has passed `to` (waiting up to `timeout` seconds). nil, with
    /// the reason logged, when the server has no summaries covering the range (before 17, `summarize_wal` off,
    /// summaries removed by `wal_summary_keep_time`): the incremental then reads every page.
    static func load(
        _ conn: PGConnection, majorVersion: Int, timeline: UInt32, from: LSN, to: LSN, clock: any WallClock,
        timeout: Double = 60
    ) throws -> ChangedBlocks? {
        guard majorVersion >= 17 else { return nil }
        func without(_ why: String) -> ChangedBlocks? {
            logger.info("reading every relation page for the incremental: \(why)")
            return nil
        }
        guard try conn.scalar("SHOW summarize_wal") == "on" else { return without("summarize_wal is off") }
        let deadline = clock.now().addingTimeInterval(timeout)
        while LSN(try conn.scalar("SELECT summarized_lsn::text FROM pg_get_wal_summarizer_state()") ?? "").map({
            $0 < to
        }) ?? true {
            guard clock.now() < deadline else {
                return without("the WAL summarizer has not reached \(to) within \(Int(timeout)) s")
            }
            try Interruption.check()
            clock.sleep(seconds: 0.2)
        }
        let range = "s.tli = \(timeline) AND s.end_lsn > '\(from)'::pg_lsn AND s.start_lsn < '\(to)'::pg_lsn"
        let spans = try conn.query(
            "SELECT s.start_lsn::text, s.end_lsn::text FROM pg_available_wal_summaries() s WHERE \(range) ORDER BY s.start_lsn"
        )
        .compactMap { row in LSN(row[0] ?? "").flatMap { a in LSN(row[1] ?? "").map { (a, $0) } } }
        guard covers(spans, from: from, to: to) else {
            return without(
                "the WAL summaries on timeline \(timeline) do not cover \(from)…\(to) (removed after wal_summary_keep_time, or summarize_wal was off)"
            )
        }
        let changed = ChangedBlocks()
        _ = try conn.query("BEGIN")
        defer { _ = try? conn.query("COMMIT") }
        _ = try conn.query(
            """
            DECLARE cairn_changed NO SCROLL CURSOR FOR
            SELECT c.reltablespace::text, c.reldatabase::text, c.relfilenode::text, c.relblocknumber::text, c.is_limit_block::text
            FROM pg_available_wal_summaries() s, LATERAL pg_wal_summary_contents(s.tli, s.start_lsn, s.end_lsn) c
            WHERE \(range) AND c.relforknumber = 0
            """)
        while true {
            let rows = try conn.query("FETCH 50000 FROM cairn_changed")
            if rows.isEmpty { break }
            for row in rows {
                guard row.count == 5, let spc = UInt32(row[0] ?? ""), let db = UInt32(row[1] ?? ""),
                    let node = UInt32(row[2] ?? ""),
                    let block = UInt32(row[3] ?? "")
                else { continue }
                changed.add(tablespace: spc, database: db, node: node, block: block, isLimit: row[4] == "true")
            }
        }
        return changed
    }

    /// Whether summaries `spans` (sorted by start) cover `from`…`to` without a hole.
    static func covers(_ spans: [(LSN, LSN)], from: LSN, to: LSN) -> Bool {
        guard let first = spans.first, first.0 <= from else { return false }
        var reached = first.1
        for (start, end) in spans.dropFirst() {
            guard start <= reached else { return false }
            reached = max(reached, end)
        }
        return reached >= to
    }
}
