import CCRC32C
import CairnBase
import CairnStorage
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
        var crc32c: UInt32
    }

    let repo: any Repository
    let pipeline: Pipeline
    let backupId: String
    let archive: String
    let bundleSize: Int64
    /// Threads copying at once.
    let lanes: Int
    /// Receives the bytes each read adds.
    let onBytes: @Sendable (Int64) -> Void
    /// Create-only writes; with several lanes, each lane sends its own parts (one part buffer per lane), so
    /// memory stays at lanes × (one part + a zstd context): the lanes are the parallel uploads.
    let putOptions: PutOptions
    private let lock = NSLock()
    private var nextIndex = 0
    private(set) var objects: [(index: Int, object: BackupManifest.Object)] = []
    private(set) var copied: [Copied] = []
    /// Keys of the bundles committed so far (what a failed backup removes again).
    var committedKeys: [String] { locked { objects.map(\.object.key) } }

    init(repo: any Repository, pipeline: Pipeline, backupId: String, archive: String, bundleSize: Int64,
         lanes: Int, onBytes: @escaping @Sendable (Int64) -> Void) {
        self.repo = repo
        self.pipeline = pipeline
        self.backupId = backupId
        self.archive = archive
        self.bundleSize = bundleSize
        self.lanes = max(1, lanes)
        self.onBytes = onBytes
        putOptions = PutOptions(createOnly: true, uploadThreads: lanes > 1 ? 0 : nil)
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
        private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)

        fileprivate init(owner: FileCopier) { self.owner = owner }
        deinit { buffer.deallocate() }

        /// Adds one entry; a file that vanished since the scan (a dropped table) is left out.
        func add(_ e: DataDirectory.Entry) throws {
            try Interruption.check()
            switch e.kind {
            case .directory:
                try header(TarHeader(name: e.path, mode: e.mode, size: 0, type: UInt8(ascii: "5"), linkName: ""), mtime: e.mtime)
            case .symlink(let target):
                try header(TarHeader(name: e.path, mode: e.mode, size: 0, type: UInt8(ascii: "2"), linkName: target), mtime: e.mtime)
            case .file(let size):
                let fd = open(e.source, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    if errno == ENOENT { return }
                    throw CairnError(.localIO, "cannot open \(e.source): \(String(cString: strerror(errno)))",
                                    hint: "run the backup as the cluster's OS user (postgres), or set cluster.backup_method: stream")
                }
                defer { Glibc.close(fd) }
                posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
                let s = try header(TarHeader(name: e.path, mode: e.mode, size: size, type: UInt8(ascii: "0"), linkName: ""), mtime: e.mtime)
                let crc = try copyData(fd: fd, size: size, path: e.source, into: s)
                try write(zeros: Int(TarHeader.padding(size)), to: s)
                files.append(Copied(path: e.path, size: size, mtime: e.mtime, crc32c: crc))
            }
        }

        /// Adds a file whose content is in memory (backup_label).
        func add(path: String, content: [UInt8], mtime: Int) throws {
            let s = try header(TarHeader(name: path, mode: 0o600, size: Int64(content.count), type: UInt8(ascii: "0"), linkName: ""),
                               mtime: mtime)
            try content.withUnsafeBytes { try s.write($0) }
            try write(zeros: Int(TarHeader.padding(Int64(content.count))), to: s)
            let crc = content.withUnsafeBytes { cairn_crc32c_update(0xFFFF_FFFF, $0.baseAddress, $0.count) } ^ 0xFFFF_FFFF
            files.append(Copied(path: path, size: Int64(content.count), mtime: mtime, crc32c: crc))
        }

        /// Reads exactly `size` bytes: a file that shrank since the scan is padded with zeros and one that grew is
        /// cut, as PostgreSQL's own base backup does (WAL replay repairs both).
        private func copyData(fd: Int32, size: Int64, path: String, into s: StoreStream) throws -> UInt32 {
            var left = size
            var crc: UInt32 = 0xFFFF_FFFF
            while left > 0 {
                let want = Int(min(Int64(buffer.count), left))
                let n = read(fd, buffer.baseAddress, want)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CairnError(.localIO, "cannot read \(path): \(String(cString: strerror(errno)))")
                }
                if n == 0 {
                    // Truncated while copying: fill with zeros.
                    let z = Int(min(Int64(buffer.count), left))
                    memset(buffer.baseAddress!, 0, z)
                    let zeros = UnsafeRawBufferPointer(rebasing: buffer[0..<z])
                    crc = cairn_crc32c_update(crc, zeros.baseAddress, z)
                    try s.write(zeros)
                    left -= Int64(z)
                    owner.add(bytes: Int64(z))
                    continue
                }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                crc = cairn_crc32c_update(crc, chunk.baseAddress, n)
                try s.write(chunk)
                left -= Int64(n)
                owner.add(bytes: Int64(n))
            }
            return crc ^ 0xFFFF_FFFF
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
            }
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
            owner.committed(index, BackupManifest.Object(key: s.key, digest: digest, files: files.count,
                                                         firstPath: firstPath, lastPath: lastPath), files: files)
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
