import CairnBase
import Foundation

/// Writes the blocks of one tar entry of a chain restore into place: the blocks of a whole file or of a
/// ``BlockDelta`` entry, each only if no newer backup wrote it (``ChainFiles/FileBlocks/claim(_:)``).
final class BlockPlacer {
    private let blocks: ChainFiles.FileBlocks
    private let fd: Int32
    private let path: String
    /// The entry is a ``BlockDelta`` (else a whole file, block n at n × 8 KiB).
    private let isDelta: Bool
    private let entrySize: Int64
    private var delta: BlockDelta?
    private var headerBytes: [UInt8] = []
    private var pending: [UInt8] = []
    /// Blocks of this entry passed so far.
    private var index = 0
    /// Bytes written.
    private(set) var written: Int64 = 0

    init(blocks: ChainFiles.FileBlocks, fd: Int32, path: String, isDelta: Bool, entrySize: Int64) {
        self.blocks = blocks
        self.fd = fd
        self.path = path
        self.isDelta = isDelta
        self.entrySize = entrySize
        pending.reserveCapacity(RelationBlocks.blockSize)
    }

    /// Takes the entry's next bytes.
    func feed(_ input: UnsafeRawBufferPointer) throws {
        guard isDelta && delta == nil else { return try place(input) }
        // A block entry starts with its header; what arrives with it past the header is block data.
        headerBytes += input
        guard let (d, size) = try BlockDelta.decodeHeader(headerBytes, entrySize: entrySize) else { return }
        delta = d
        let rest = Array(headerBytes[size...])
        headerBytes = []
        try rest.withUnsafeBytes { try place($0) }
    }

    private func place(_ data: UnsafeRawBufferPointer) throws {
        let bs = RelationBlocks.blockSize
        var off = 0
        while off < data.count {
            if pending.isEmpty && data.count - off >= bs {
                try put(UnsafeRawBufferPointer(rebasing: data[off..<(off + bs)]))
                off += bs
                continue
            }
            let n = min(bs - pending.count, data.count - off)
            pending += data[off..<(off + n)]
            off += n
            if pending.count == bs {
                try pending.withUnsafeBytes { try put($0) }
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    /// The entry's end: a whole file's last, partial block.
    func finish() throws {
        if isDelta && delta == nil { throw CairnError(.dataCorrupt, "a block entry of \(path) ended inside its header") }
        if !pending.isEmpty {
            guard !isDelta else { throw CairnError(.dataCorrupt, "a block entry of \(path) ended inside a block") }
            try pending.withUnsafeBytes { try put($0) }
            pending = []
        }
    }

    /// One block (or a whole file's partial last one): written unless a newer backup had it.
    private func put(_ block: UnsafeRawBufferPointer) throws {
        defer { index += 1 }
        let number: Int64
        if let d = delta {
            guard index < d.blocks.count else { throw CairnError(.dataCorrupt, "a block entry of \(path) holds more blocks than it lists") }
            number = Int64(d.blocks[index])
        } else {
            number = Int64(index)
        }
        guard blocks.claim(number) else { return }
        var off = 0
        let at = number * Int64(RelationBlocks.blockSize)
        while off < block.count {
            let n = pwrite(fd, block.baseAddress! + off, block.count - off, off_t(at + Int64(off)))
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw CairnError(e == ENOSPC || e == EDQUOT ? .repoNoSpace : .localIO, "cannot write \(path): \(String(cString: strerror(e)))",
                                hint: e == ENOSPC ? "free space on the restore target's file system" : nil)
            }
            off += n
        }
        written += Int64(block.count)
    }
}
