import CairnBase
import Foundation

/// Writes the blocks of one tar entry of a chain restore into place: the blocks of a whole file or of a
/// ``BlockDelta`` entry, each only if no newer backup wrote it (``ChainFiles/FileBlocks/claim(_:)``). In a delta
/// restore (`tally` set) each block is first read from the file on disk and written only when it differs.
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
    /// A delta restore's counters; nil: every block is written without reading the file first.
    private let tally: DeltaTally?
    /// What a delta restore read of the file on disk: `onDiskCount` bytes from offset `onDiskAt`.
    private var onDisk: [UInt8] = []
    private var onDiskAt: Int64 = 0
    private var onDiskCount = 0
    /// Starts the kernel's write-back every 8 MiB written, as a whole file's writer does: a chain restore
    /// passes whole relation segments through here, and left to the final `syncfs` their dirty pages pile up.
    private var writeBack = WriteBack()

    init(
        blocks: ChainFiles.FileBlocks, fd: Int32, path: String, isDelta: Bool, entrySize: Int64,
        tally: DeltaTally? = nil
    ) {
        self.blocks = blocks
        self.fd = fd
        self.path = path
        self.isDelta = isDelta
        self.entrySize = entrySize
        self.tally = tally
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

    /// Places whole blocks straight from `data` (a run of them is written without a copy: the run points into
    /// `data`, so it is flushed before this returns); a block split across two calls is gathered in `pending`.
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
                try putPending()
                pending.removeAll(keepingCapacity: true)
            }
        }
        try flush()
    }

    /// Puts the block gathered in `pending` and writes it at once (the next input reuses `pending`).
    private func putPending() throws {
        try pending.withUnsafeBytes {
            try put($0)
            try flush()
        }
    }

    /// The entry's end: a whole file's last, partial block.
    func finish() throws {
        if isDelta && delta == nil {
            throw CairnError(.dataCorrupt, "a block entry of \(path) ended inside its header")
        }
        if !pending.isEmpty {
            guard !isDelta else { throw CairnError(.dataCorrupt, "a block entry of \(path) ended inside a block") }
            try putPending()
            pending = []
        }
        if written > 0 {
            tally?.rewrote(path, bytes: written)
            writeBack.finished(fd)
        }
    }

    /// True when the file already holds `block` at `at` (a delta restore), compared byte for byte with what
    /// `pread` finds there. A whole file's blocks arrive in order, so they are read ahead ``readWindow`` bytes at a
    /// time (each block is compared before anything is written at its offset); a block entry's scattered blocks are
    /// read one at a time.
    private func alreadyThere(_ block: UnsafeRawBufferPointer, at: Int64) throws -> Bool {
        guard let tally else { return false }
        if at < onDiskAt || at + Int64(block.count) > onDiskAt + Int64(onDiskCount) {
            try readOnDisk(at: at, count: isDelta ? block.count : max(block.count, Self.readWindow))
        }
        let offset = Int(at - onDiskAt)
        let available = min(block.count, max(0, onDiskCount - offset))
        tally.compared(bytes: Int64(available))
        return available == block.count
            && onDisk.withUnsafeBytes { memcmp($0.baseAddress! + offset, block.baseAddress!, block.count) == 0 }
    }

    /// Bytes of the file on disk read at once for a whole file's blocks.
    static let readWindow = 1 << 20

    /// Reads up to `count` bytes of the file on disk from `at` (fewer at its end).
    private func readOnDisk(at: Int64, count: Int) throws {
        if onDisk.count < count { onDisk = [UInt8](repeating: 0, count: count) }
        let got = try onDisk.withUnsafeMutableBytes {
            try FileIO.readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: at, path: path)
        }
        (onDiskAt, onDiskCount) = (at, got)
    }

    /// One block (or a whole file's partial last one): written unless a newer backup had it. Consecutive blocks
    /// are gathered into one write of up to ``runLimit`` bytes.
    private func put(_ block: UnsafeRawBufferPointer) throws {
        defer { index += 1 }
        let number: Int64
        if let d = delta {
            guard index < d.blocks.count else {
                throw CairnError(.dataCorrupt, "a block entry of \(path) holds more blocks than it lists")
            }
            number = Int64(d.blocks[index])
        } else {
            number = Int64(index)
        }
        guard blocks.claim(number) else { return try flush() }
        let at = number * Int64(RelationBlocks.blockSize)
        if try alreadyThere(block, at: at) { return try flush() }  // a delta restore: this block is right already
        if let r = run, r.base + r.count == block.baseAddress!, r.at + Int64(r.count) == at,
            r.count + block.count <= Self.runLimit
        {
            run!.count += block.count
        } else {
            try flush()
            run = (block.baseAddress!, block.count, at)
        }
    }

    /// Bytes gathered for one write.
    static let runLimit = 1 << 20
    /// Consecutive blocks to write, adjacent in memory (in the input being placed) and in the file.
    private var run: (base: UnsafeRawPointer, count: Int, at: Int64)?

    /// Writes the gathered run of blocks.
    private func flush() throws {
        guard let r = run else { return }
        run = nil
        try FileIO.writeFully(fd, UnsafeRawBufferPointer(start: r.base, count: r.count), at: r.at, path: path)
        written += Int64(r.count)
        writeBack.wrote(fd, r.count)
    }
}
