import CairnPostgres
import Foundation

/// What an incremental backup knows about PostgreSQL's data files: which ones are a relation's main fork (kept at
/// block level) and the LSN on each 8 KiB page.
public enum RelationBlocks {
    /// PostgreSQL's page size (`BLCKSZ`), as Debian's and the wheel's builds use.
    public static let blockSize = 8192

    /// Whether `path` (as the PostgreSQL manifest spells it) is a segment of a relation's main fork:
    /// `base/<db>/<node>[.<seg>]`, `global/<node>[.<seg>]` or `pg_tblspc/<oid>/<PG_…>/<db>/<node>[.<seg>]`. Other
    /// forks (`_fsm`, `_vm`, `_init`) are not: the visibility map's bits are cleared without a new page LSN, so
    /// they are compared whole.
    public static func isMainFork(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let file: Substring
        switch parts.count {
        case 2 where parts[0] == "global": file = parts[1]
        case 3 where parts[0] == "base" && isNumber(parts[1]): file = parts[2]
        case 5 where parts[0] == "pg_tblspc" && isNumber(parts[1]) && parts[2].hasPrefix("PG_") && isNumber(parts[3]):
            file = parts[4]
        default: return false
        }
        let pieces = file.split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count <= 2, isNumber(pieces[0]) else { return false }
        return pieces.count == 1 || isNumber(pieces[1])
    }

    private static func isNumber(_ s: Substring) -> Bool { !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber } }

    /// The LSN in a page's header (`pd_lsn`: two 32-bit halves, high first, in the machine's byte order).
    public static func pageLSN(_ page: UnsafeRawBufferPointer) -> UInt64 {
        let hi = UInt64(page.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        let lo = UInt64(page.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        return hi << 32 | lo
    }

    /// Whether an incremental backup whose parent started at `threshold` must keep block `block` whose page is
    /// `page`: changed since (LSN at or after it), new (beyond `parentBlocks`, the file's length in the parent), or
    /// without an LSN (a new, all-zero page; never trusted to be unchanged).
    public static func mustKeep(page: UnsafeRawBufferPointer, block: Int64, threshold: LSN, parentBlocks: Int64) -> Bool
    {
        if block >= parentBlocks { return true }
        let lsn = pageLSN(page)
        return lsn == 0 || lsn >= threshold.value
    }
}
