import CairnPostgres
import Foundation

/// What an incremental or differential backup compares against: its parent's start LSN and complete file list.
public struct IncrementalParent: Sendable {
    /// The parent backup (full, incremental or differential).
    public var id: String
    /// The parent's start LSN: a page whose LSN is older has not changed since the parent's checkpoint.
    public var threshold: LSN
    /// Every file at the parent, with the parent's sizes and checksums.
    public var files: PGManifestFiles
    /// The blocks changed since, from the server's WAL summaries (17+); nil: every page's LSN is read instead.
    public var changed: ChangedBlocks?

    public init(id: String, threshold: LSN, files: PGManifestFiles) {
        self.id = id
        self.threshold = threshold
        self.files = files
    }

    /// Files up to this size that are not a relation's main fork are compared with the parent's checksum and left
    /// out when equal (read twice: once to compare, once to store).
    public static let compareWholeLimit: Int64 = 1 << 20

    /// How an incremental stores one file.
    public enum Copy: Equatable, Sendable {
        /// The whole file: new since the parent, not a relation, or its layout is unusual.
        case whole
        /// The blocks changed since the parent, and those past `parentBlocks` (the file's length in the parent),
        /// found by reading every page's LSN.
        case blocks(parentBlocks: Int64)
        /// Only these blocks (relative to the file, ascending), as the WAL summaries name them.
        case selected([UInt32])
        /// Left out when its content equals the parent's (this CRC-32C), stored whole otherwise.
        case unlessUnchanged(crc32c: UInt32)
    }

    /// How to store the file at `path` (the manifest's spelling) of `size` bytes.
    public func copy(path: String, size: Int64) -> Copy {
        guard path != "global/pg_control", let p = files.files[path] else { return .whole }
        let block = Int64(RelationBlocks.blockSize)
        if RelationBlocks.isMainFork(path) && size % block == 0 {
            switch changed?.selection(path: path, size: size, parentBlocks: p.size / block) {
            case .whole: return .whole
            case .blocks(let blocks): return .selected(blocks)
            case nil: return .blocks(parentBlocks: p.size / block)
            }
        }
        if size == p.size, size <= Self.compareWholeLimit, let crc = p.crc32c { return .unlessUnchanged(crc32c: crc) }
        return .whole
    }
}
