import CCRC32C
import CairnBase
import CairnStorage
import Crypto
import Foundation

/// Copies scanned files into an archive's bundles on several threads ("lanes"), largest files first, the way
/// pgBackRest's process-max does: each lane fills its own bundles (valid tars of whole files), so compression,
/// digests and uploads of different files run in parallel. Each file's CRC-32C is taken as it passes, for the
/// PostgreSQL-format manifest.
final class FileCopier: @unchecked Sendable {
    /// A copied file, as the PostgreSQL manifest lists it.
    struct Copied: Sendable {
        var path: String
        var size: Int64
        var mtime: Int
        /// nil for a file an incremental backup stored as changed blocks (its whole content is known only after a
        /// restore has put it together).
        var crc32c: UInt32?
    }

    let repo: any Repository
    let pipeline: Pipeline
    let backupId: String
    let archive: String
    let bundleSize: Int64
    /// Files larger than this are stored as frames of this size (``FileFrames``).
    let frameSize: Int64
    /// Threads copying at once.
    let lanes: Int
    /// Receives the bytes each read adds.
    let onBytes: @Sendable (Int64) -> Void
    /// An incremental's parent: files are stored as changed blocks, or left out when unchanged.
    let parent: IncrementalParent?
    /// What the PostgreSQL manifest puts before this archive's paths (`pg_tblspc/<oid>/` for a tablespace).
    let manifestPrefix: String
    /// Create-only writes; with several lanes, each lane has one upload thread of its own, so that it compresses
    /// its next part while the last one is sent (memory: lanes × (two parts + a zstd context)). A lane that sent
    /// its parts itself sat idle while the server stored each one: a quarter of the machine stayed idle in a
    /// backup of well-compressed data.
    let putOptions: PutOptions
    private let lock = NSLock()
    private var nextIndex = 0
    private(set) var objects: [(index: Int, object: BackupManifest.Object)] = []
    private(set) var copied: [Copied] = []
    /// Keys of the bundles committed so far (what a failed backup removes again).
    var committedKeys: [String] { locked { objects.map(\.object.key) } }

    init(
        repo: any Repository, pipeline: Pipeline, backupId: String, archive: String, bundleSize: Int64,
        lanes: Int, parent: IncrementalParent? = nil, manifestPrefix: String = "",
        frameSize: Int64 = FileFrames.defaultFrameSize, onBytes: @escaping @Sendable (Int64) -> Void
    ) {
        self.frameSize = frameSize
        self.parent = parent
        self.manifestPrefix = manifestPrefix
        self.repo = repo
        self.pipeline = pipeline
        self.backupId = backupId
        self.archive = archive
        self.bundleSize = bundleSize
        self.lanes = max(1, lanes)
        self.onBytes = onBytes
        putOptions = PutOptions(createOnly: true, uploadThreads: lanes > 1 ? 1 : nil)
    }

    /// The archive's objects in bundle order.
    var orderedObjects: [BackupManifest.Object] { locked { objects.sorted { $0.index < $1.index }.map(\.object) } }

    /// Copies `entries` on `lanes` threads: directories and links first (in one bundle), then files by size.
    func copy(_ entries: [DataDirectory.Entry]) throws {
        let meta = entries.filter { if case .file = $0.kind { false } else { true } }
        let files = entries.filter { if case .file = $0.kind { true } else { false } }
            .sorted { $0.size > $1.size }
        let queue = JobQueue(jobs: (meta.isEmpty ? [] : [meta]) + files.map { [$0] })
        let pool = WorkerPool(threads: lanes, maxQueued: lanes, name: "cairn-copy")
        for _ in 0..<lanes {
            pool.submit { [self] in
                let bundle = Bundle(owner: self)
                do {
                    while let job = queue.next(), !pool.failed {
                        for e in job { try bundle.add(e) }
                    }
                    try bundle.close()
                } catch {
                    bundle.abort()
                    throw error
                }
            }
        }
        try pool.wait()
    }

    /// Opens a bundle for entries the caller adds itself (the backup's last bundle: pg_control, backup_label).
    func openBundle() -> Bundle { Bundle(owner: self) }

    fileprivate func allocate() -> (Int, String) {
        locked {
            nextIndex += 1
            return (nextIndex, Layout.bundleKey(backupId, archive: archive, index: nextIndex))
        }
    }

    fileprivate func committed(_ index: Int, _ object: BackupManifest.Object, files: [Copied]) {
        locked {
            objects.append((index, object))
            copied += files
        }
    }

    fileprivate func add(bytes n: Int64) { onBytes(n) }

    /// A file that is in the backup without a whole copy in this archive's bundles: stored as changed blocks, or
    /// unchanged since the parent.
    fileprivate func listed(_ file: Copied) { locked { copied.append(file) } }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// One lane's open bundle: tar entries go in until it holds `bundleSize` bytes, then it is committed and the
    /// next one begins.
    final class Bundle {
        private unowned let owner: FileCopier
        private var stream: StoreStream?
        private var index = 0
        private var files: [Copied] = []
        private var firstPath: String?
        private var lastPath: String?
        private var contents = BackupManifest.BundleContents()
        private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        /// An incremental's kept blocks, waiting to be written as one ``BlockDelta`` entry.
        private var keep: UnsafeMutableRawBufferPointer?

        /// The kept-blocks buffer, allocated by the first relation file an incremental keeps blocks of.
        private func keepBuffer() -> UnsafeMutableRawBufferPointer {
            if let k = keep { return k }
            let k = UnsafeMutableRawBufferPointer.allocate(
                byteCount: BlockDelta.maxBlocks * RelationBlocks.blockSize, alignment: 64)
            keep = k
            return k
        }

        fileprivate init(owner: FileCopier) { self.owner = owner }
        deinit {
            buffer.deallocate()
            keep?.deallocate()
        }

        /// Adds one entry; a file that vanished since the scan (a dropped table) is left out.
        func add(_ e: DataDirectory.Entry) throws {
            try Interruption.check()
            switch e.kind {
            case .directory:
                try header(
                    TarHeader(name: e.path, mode: e.mode, size: 0, type: UInt8(ascii: "5"), linkName: ""),
                    mtime: e.mtime)
            case .symlink(let target):
                try header(
                    TarHeader(name: e.path, mode: e.mode, size: 0, type: UInt8(ascii: "2"), linkName: target),
                    mtime: e.mtime)
            case .file(let size):
                let fd = open(e.source, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    if errno == ENOENT { return }
                    throw CairnError(
                        .localIO, "cannot open \(e.source): \(String(cString: strerror(errno)))",
                        hint: "run the backup as the cluster's OS user (postgres), or set cluster.backup_method: stream"
                    )
                }
                defer { Glibc.close(fd) }
                posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
                switch owner.parent?.copy(path: owner.manifestPrefix + e.path, size: size) ?? .whole {
                case .whole: break
                case .blocks(let parentBlocks):
                    return try addBlocks(e, fd: fd, size: size, parentBlocks: parentBlocks)
                case .selected(let blocks):
                    return try addSelected(e, fd: fd, size: size, blocks: blocks)
                case .unlessUnchanged(let crc):
                    return try addUnlessUnchanged(e, fd: fd, size: size, parentCRC: crc)
                }
                let s = try header(
                    TarHeader(name: e.path, mode: e.mode, size: size, type: UInt8(ascii: "0"), linkName: ""),
                    mtime: e.mtime)
                let crc = try copyData(fd: fd, size: size, path: e.source, into: s)
                try write(zeros: Int(TarHeader.padding(size)), to: s)
                files.append(Copied(path: e.path, size: size, mtime: e.mtime, crc32c: crc))
            }
        }

        /// Adds a file whose content is in memory (backup_label).
        func add(path: String, content: [UInt8], mtime: Int) throws {
            let s = try header(
                TarHeader(name: path, mode: 0o600, size: Int64(content.count), type: UInt8(ascii: "0"), linkName: ""),
                mtime: mtime)
            try content.withUnsafeBytes { try s.write($0) }
            try write(zeros: Int(TarHeader.padding(Int64(content.count))), to: s)
            contents.digest(xxh128: content.withUnsafeBytes { ContentHash.of($0) })
            let crc =
                content.withUnsafeBytes { cairn_crc32c_update(0xFFFF_FFFF, $0.baseAddress, $0.count) } ^ 0xFFFF_FFFF
            files.append(Copied(path: path, size: Int64(content.count), mtime: mtime, crc32c: crc))
        }

        /// An incremental's relation file: only the blocks ``RelationBlocks/mustKeep(page:block:threshold:parentBlocks:)``
        /// keeps, in ``BlockDelta`` entries of at most ``BlockDelta/maxBlocks`` blocks; no entry when none changed.
        private func addBlocks(_ e: DataDirectory.Entry, fd: Int32, size: Int64, parentBlocks: Int64) throws {
            let bs = RelationBlocks.blockSize
            let threshold = owner.parent!.threshold
            var numbers: [UInt32] = []
            let total = size / Int64(bs)
            var block: Int64 = 0
            while block < total {
                let count = Int(min(Int64(buffer.count / bs), total - block))
                try preadPadded(fd: fd, count * bs, at: block * Int64(bs), path: e.source)
                for i in 0..<count {
                    let page = UnsafeRawBufferPointer(rebasing: buffer[(i * bs)..<((i + 1) * bs)])
                    guard
                        RelationBlocks.mustKeep(
                            page: page, block: block + Int64(i), threshold: threshold, parentBlocks: parentBlocks)
                    else { continue }
                    keepBuffer().baseAddress!.advanced(by: numbers.count * bs).copyMemory(
                        from: page.baseAddress!, byteCount: bs)
                    numbers.append(UInt32(block + Int64(i)))
                    if numbers.count == BlockDelta.maxBlocks {
                        try writeDelta(e, BlockDelta(fileSize: size, blocks: numbers))
                        numbers = []
                    }
                }
                block += Int64(count)
                owner.add(bytes: Int64(count * bs))
            }
            if !numbers.isEmpty { try writeDelta(e, BlockDelta(fileSize: size, blocks: numbers)) }
            owner.listed(Copied(path: e.path, size: size, mtime: e.mtime, crc32c: nil))
        }

        /// An incremental's relation file with the WAL summaries: only `blocks` are read (consecutive ones at once),
        /// in ``BlockDelta`` entries; no entry when there are none.
        private func addSelected(_ e: DataDirectory.Entry, fd: Int32, size: Int64, blocks: [UInt32]) throws {
            let bs = RelationBlocks.blockSize
            var numbers: [UInt32] = []
            var i = 0
            while i < blocks.count {
                // A run of consecutive blocks, at most what fits in the read buffer and the entry.
                var n = 1
                while i + n < blocks.count && blocks[i + n] == blocks[i] + UInt32(n) && n < buffer.count / bs
                    && numbers.count + n < BlockDelta.maxBlocks
                { n += 1 }
                try preadPadded(fd: fd, n * bs, at: Int64(blocks[i]) * Int64(bs), path: e.source)
                keepBuffer().baseAddress!.advanced(by: numbers.count * bs).copyMemory(
                    from: buffer.baseAddress!, byteCount: n * bs)
                numbers += blocks[i..<(i + n)]
                owner.add(bytes: Int64(n * bs))
                if numbers.count == BlockDelta.maxBlocks {
                    try writeDelta(e, BlockDelta(fileSize: size, blocks: numbers))
                    numbers = []
                }
                i += n
            }
            if !numbers.isEmpty { try writeDelta(e, BlockDelta(fileSize: size, blocks: numbers)) }
            owner.listed(Copied(path: e.path, size: size, mtime: e.mtime, crc32c: nil))
        }

        /// Reads `n` bytes (at most the buffer) at `offset` into the buffer, zeros past the end of a file that shrank.
        private func preadPadded(fd: Int32, _ n: Int, at offset: Int64, path: String) throws {
            let got = try FileIO.readFully(
                fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: offset, path: path)
            if got < n { memset(buffer.baseAddress! + got, 0, n - got) }
        }

        /// One ``BlockDelta`` entry with the first `delta.blocks.count` blocks of `keep`.
        private func writeDelta(_ e: DataDirectory.Entry, _ delta: BlockDelta) throws {
            let s = try header(
                TarHeader(name: e.path, mode: e.mode, size: delta.entrySize, type: BlockDelta.typeflag, linkName: ""),
                mtime: e.mtime)
            try delta.encodeHeader().withUnsafeBytes { try s.write($0) }
            try s.write(
                UnsafeRawBufferPointer(rebasing: keepBuffer()[0..<(delta.blocks.count * RelationBlocks.blockSize)]))
            try write(zeros: Int(TarHeader.padding(delta.entrySize)), to: s)
        }

        /// An incremental's small file that is not a relation's main fork: left out when its CRC-32C equals the
        /// parent's, stored whole otherwise.
        private func addUnlessUnchanged(_ e: DataDirectory.Entry, fd: Int32, size: Int64, parentCRC: UInt32) throws {
            let n = Int(size)
            try preadPadded(fd: fd, n, at: 0, path: e.source)
            owner.add(bytes: size)
            let content = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            let crc = cairn_crc32c_update(0xFFFF_FFFF, content.baseAddress, n) ^ 0xFFFF_FFFF
            if crc == parentCRC { return owner.listed(Copied(path: e.path, size: size, mtime: e.mtime, crc32c: crc)) }
            let s = try header(
                TarHeader(name: e.path, mode: e.mode, size: size, type: UInt8(ascii: "0"), linkName: ""), mtime: e.mtime
            )
            try s.write(content)
            try write(zeros: Int(TarHeader.padding(size)), to: s)
            contents.digest(xxh128: ContentHash.of(content))
            files.append(Copied(path: e.path, size: size, mtime: e.mtime, crc32c: crc))
        }

        /// Reads exactly `size` bytes: a file that shrank since the scan is padded with zeros and one that grew is
        /// cut, as PostgreSQL's own base backup does (WAL replay repairs both). Returns the CRC-32C (for the
        /// PostgreSQL manifest) and records in the bundle's contents, for a delta restore, the file's XXH3-128 or,
        /// for a file larger than one frame, its frames (``FileFrames``).
        private func copyData(fd: Int32, size: Int64, path: String, into s: StoreStream) throws -> UInt32 {
            let framed = size > owner.frameSize
            let slice = framed ? owner.frameSize : max(size, 1)
            var frames =
                framed ? FileFramesBuilder(frameSize: slice, firstOffset: try s.endFrame(hashNext: true).end) : nil
            var left = size
            var crc: UInt32 = 0xFFFF_FFFF
            let hash = try ContentHash()
            var inSlice: Int64 = 0
            while left > 0 {
                let want = Int(min(Int64(buffer.count), left, slice - inSlice))
                let n = try readSome(fd: fd, want, path: path)
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                crc = cairn_crc32c_update(crc, chunk.baseAddress, n)
                hash.update(chunk)
                try s.write(chunk)
                left -= Int64(n)
                inSlice += Int64(n)
                owner.add(bytes: Int64(n))
                if framed && (inSlice == slice || left == 0) {
                    let (end, stored) = try s.endFrame(hashNext: left > 0)
                    guard let stored else { throw CairnError(.internal, "a frame of \(path) was not hashed") }
                    frames?.add(content: hash.finish(), stored: stored, end: end)
                    inSlice = 0
                }
            }
            if let frames { contents.frames(frames.frames) } else { contents.digest(xxh128: hash.finish()) }
            return crc ^ 0xFFFF_FFFF
        }

        /// Reads up to `want` bytes into the buffer; at the end of a file truncated while copying, `want` zeros.
        private func readSome(fd: Int32, _ want: Int, path: String) throws -> Int {
            while true {
                let n = read(fd, buffer.baseAddress, want)
                if n > 0 { return n }
                if n == 0 {
                    memset(buffer.baseAddress!, 0, want)
                    return want
                }
                if errno != EINTR {
                    throw CairnError(.localIO, "cannot read \(path): \(String(cString: strerror(errno)))")
                }
            }
        }

        /// Writes an entry's header into the open bundle (committing a full one and beginning the next first)
        /// and returns the bundle's stream for the entry's data.
        @discardableResult
        private func header(_ h: TarHeader, mtime: Int) throws -> StoreStream {
            if let s = stream, s.bytesIn >= owner.bundleSize { try close() }
            let s: StoreStream
            if let open = stream {
                s = open
            } else {
                let (i, key) = owner.allocate()
                index = i
                s = try owner.pipeline.beginStore(owner.repo, key: key, options: owner.putOptions, contentDigest: false)
                stream = s
                files = []
                firstPath = nil
                contents = BackupManifest.BundleContents()
            }
            contents.add(h)
            if h.type != UInt8(ascii: "5") && h.type != UInt8(ascii: "2") {
                firstPath = firstPath ?? h.name
                lastPath = h.name
            }
            try h.encode(mtime: mtime).withUnsafeBytes { try s.write($0) }
            return s
        }

        private func write(zeros n: Int, to s: StoreStream) throws {
            guard n > 0 else { return }
            try [UInt8](repeating: 0, count: n).withUnsafeBytes { try s.write($0) }
        }

        /// Commits the open bundle (two end-of-archive blocks, then the object).
        func close() throws {
            guard let s = stream else { return }
            try write(zeros: 2 * TarHeader.block, to: s)
            stream = nil
            let digest = try s.finish()
            owner.committed(
                index,
                BackupManifest.Object(
                    key: s.key, digest: digest, files: files.count,
                    firstPath: firstPath, lastPath: lastPath, contents: contents), files: files)
        }

        func abort() {
            stream?.abort()
            stream = nil
        }
    }

    /// Hands out jobs to lanes in order.
    private final class JobQueue: @unchecked Sendable {
        private let lock = NSLock()
        private let jobs: [[DataDirectory.Entry]]
        private var cursor = 0
        init(jobs: [[DataDirectory.Entry]]) { self.jobs = jobs }
        func next() -> [DataDirectory.Entry]? {
            lock.lock()
            defer { lock.unlock() }
            guard cursor < jobs.count else { return nil }
            cursor += 1
            return jobs[cursor - 1]
        }
    }
}

extension DataDirectory.Entry {
    /// File size (0 for directories and links).
    var size: Int64 { if case .file(let s) = kind { s } else { 0 } }
}
