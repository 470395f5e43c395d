import CairnBase
import Foundation

/// Some blocks of one relation file, stored by an incremental backup as a tar entry of Cairn's own type `B` (POSIX
/// leaves the letters to vendors) under the file's path. Its data: a header, then the blocks in ascending order.
///
///     "CAIRNBLK"  8 bytes   magic
///     file size   8 bytes   little-endian: the file's length at this backup (a restore truncates to it)
///     count       4 bytes   little-endian: blocks that follow
///     reserved    4 bytes   zero
///     numbers     4 × count little-endian block numbers, ascending
///     blocks      8192 × count
///
/// A file with many changed blocks is stored as several such entries (each at most ``maxBlocks``), so the backup
/// never holds more than one entry's blocks (1 MiB) in memory per lane. A reader accepts up to ``readLimit``.
public struct BlockDelta: Equatable, Sendable {
    public static let typeflag = UInt8(ascii: "B")
    static let magic = Array("CAIRNBLK".utf8)
    /// Blocks per entry written: 1 MiB of data.
    public static let maxBlocks = 128
    /// Blocks per entry a reader accepts (a later writer may use larger entries).
    public static let readLimit = 4096
    static let fixedHeader = 24

    public var fileSize: Int64
    public var blocks: [UInt32]

    public init(fileSize: Int64, blocks: [UInt32]) {
        self.fileSize = fileSize
        self.blocks = blocks
    }

    /// The header bytes (everything before the blocks).
    public func encodeHeader() -> [UInt8] {
        var out = BlockDelta.magic
        withUnsafeBytes(of: UInt64(fileSize).littleEndian) { out += $0 }
        withUnsafeBytes(of: UInt32(blocks.count).littleEndian) { out += $0 }
        out += [0, 0, 0, 0]
        for b in blocks { withUnsafeBytes(of: b.littleEndian) { out += $0 } }
        return out
    }

    /// The entry's data size: header and blocks.
    public var entrySize: Int64 {
        Int64(BlockDelta.fixedHeader + 4 * blocks.count + RelationBlocks.blockSize * blocks.count)
    }

    /// Reads a header from the start of an entry's data; nil while `bytes` is too short to tell. Throws on a header
    /// that is not one (wrong magic, block numbers out of order, more data than the entry holds).
    public static func decodeHeader(_ bytes: [UInt8], entrySize: Int64) throws -> (delta: BlockDelta, headerSize: Int)?
    {
        guard bytes.count >= fixedHeader else { return nil }
        guard Array(bytes[0..<8]) == magic else {
            throw CairnError(.dataCorrupt, "a block entry without its magic number")
        }
        func u32(_ at: Int) -> UInt32 { bytes[at..<(at + 4)].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        let size = bytes[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let count = Int(u32(16))
        let headerSize = fixedHeader + 4 * count
        guard count <= readLimit, Int64(headerSize) + Int64(count) * Int64(RelationBlocks.blockSize) == entrySize,
            size <= UInt64(Int64.max)
        else {
            throw CairnError(.dataCorrupt, "a block entry whose header does not match its size")
        }
        guard bytes.count >= headerSize else { return nil }
        let numbers = (0..<count).map { u32(fixedHeader + 4 * $0) }
        guard zip(numbers, numbers.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw CairnError(.dataCorrupt, "a block entry whose block numbers are out of order")
        }
        return (BlockDelta(fileSize: Int64(size), blocks: numbers), headerSize)
    }
}
