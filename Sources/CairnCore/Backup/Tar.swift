import CairnBase
import Foundation

/// The fields of a tar (ustar/GNU) header that Cairn uses.
struct TarHeader {
    var name: String
    var mode: UInt32
    var size: Int64
    var type: UInt8
    var linkName: String

    static let block = 512

    /// Parses a header block; nil for an all-zero block (end of archive). Throws on a damaged header.
    static func parse(_ b: UnsafeRawBufferPointer) throws -> TarHeader? {
        if b.allSatisfy({ $0 == 0 }) { return nil }
        func str(_ off: Int, _ len: Int) -> String {
            let slice = b[off..<(off + len)]
            let end = slice.firstIndex(of: 0) ?? slice.endIndex
            return String(decoding: b[off..<end], as: UTF8.self)
        }
        func octal(_ off: Int, _ len: Int) throws -> Int64 {
            if b[off] & 0x80 != 0 {  // GNU base-256 for large sizes
                var v: Int64 = 0
                for i in (off + 1)..<(off + len) { v = v << 8 | Int64(b[i]) }
                return v
            }
            let s = str(off, len).trimmingCharacters(in: CharacterSet(charactersIn: " \0"))
            if s.isEmpty { return 0 }
            guard let v = Int64(s, radix: 8) else {
                throw CairnError(.dataCorrupt, "tar header with a bad number field: \(s)")
            }
            return v
        }
        // Checksum: sum of the header bytes with the checksum field taken as spaces.
        var sum: Int64 = 0
        for i in 0..<block { sum += Int64((148..<156).contains(i) ? 32 : b[i]) }
        let stored = try octal(148, 8)
        guard stored == sum else { throw CairnError(.dataCorrupt, "tar header checksum mismatch") }
        var name = str(0, 100)
        if str(257, 5) == "ustar" {
            let prefix = str(345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        return TarHeader(
            name: name, mode: UInt32(try octal(100, 8)), size: try octal(124, 12), type: b[156],
            linkName: str(157, 100))
    }

    /// The header blocks for this entry: one ustar block (the name split into prefix and name where it fits),
    /// preceded by a GNU long-name entry when it does not. Sizes past the octal field use GNU base-256.
    func encode(mtime: Int) -> [UInt8] {
        var out: [UInt8] = []
        var shortName = Array(name.utf8)
        var prefix: [UInt8] = []
        if shortName.count > 100 {
            // ustar: split at a slash into prefix (≤ 155) and name (≤ 100).
            let bytes = shortName
            if let cut = bytes.indices.last(where: {
                bytes[$0] == UInt8(ascii: "/") && $0 <= 155 && bytes.count - $0 - 1 <= 100
            }),
                cut > 0
            {
                prefix = Array(bytes[..<cut])
                shortName = Array(bytes[(cut + 1)...])
            } else {
                out += TarHeader.gnuLong(name, type: "L")
                shortName = Array(shortName.prefix(100))
            }
        }
        if linkName.utf8.count > 100 { out += TarHeader.gnuLong(linkName, type: "K") }
        var b = [UInt8](repeating: 0, count: TarHeader.block)
        func put(_ bytes: [UInt8], _ off: Int, _ len: Int) {
            for (i, c) in bytes.prefix(len).enumerated() { b[off + i] = c }
        }
        func octal(_ v: Int64, _ off: Int, _ len: Int) {
            let digits = String(v, radix: 8)
            if digits.count < len {
                put(Array((String(repeating: "0", count: len - 1 - digits.count) + digits).utf8), off, len - 1)
            } else {
                b[off] = 0x80
                var x = v
                for i in stride(from: off + len - 1, to: off, by: -1) { b[i] = UInt8(x & 0xff); x >>= 8 }
            }
        }
        put(shortName, 0, 100)
        octal(Int64(mode), 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        octal(size, 124, 12)
        octal(Int64(max(0, mtime)), 136, 12)
        b[156] = type
        put(Array(linkName.utf8), 157, 100)
        put(Array("ustar\u{0}00".utf8), 257, 8)
        put(prefix, 345, 155)
        put([UInt8](repeating: 32, count: 8), 148, 8)
        let sum = b.reduce(0) { $0 + Int($1) }
        put(
            Array((String(repeating: "0", count: 6 - String(sum, radix: 8).count) + String(sum, radix: 8)).utf8) + [
                0, 32
            ], 148, 8)
        return out + b
    }

    /// A GNU long-name (`L`) or long-link (`K`) entry carrying `text` for the header after it.
    private static func gnuLong(_ text: String, type: Unicode.Scalar) -> [UInt8] {
        let long = Array(text.utf8) + [0]
        return TarHeader(
            name: "././@LongLink", mode: 0, size: Int64(long.count), type: UInt8(ascii: type), linkName: ""
        )
        .encode(mtime: 0) + long + [UInt8](repeating: 0, count: Int(padding(Int64(long.count))))
    }

    /// Padding after `size` bytes of data.
    static func padding(_ size: Int64) -> Int64 { (Int64(block) - size % Int64(block)) % Int64(block) }

    /// True for headers that describe the next entry (GNU long names, pax) rather than a file.
    var isMeta: Bool {
        type == UInt8(ascii: "L") || type == UInt8(ascii: "K") || type == UInt8(ascii: "x") || type == UInt8(ascii: "g")
    }
}

/// Walks a tar stream as it arrives, calling `onEntry` before each entry's first byte (so a caller can start a
/// new object there) and `emit` with the entry's bytes. End-of-archive blocks are swallowed.
final class TarSplitter {
    private let onEntry: (TarHeader) throws -> Void
    private let emit: (UnsafeRawBufferPointer) throws -> Void
    private var header = [UInt8]()
    private var remaining: Int64 = 0  // data + padding bytes of the current entry still to pass
    private var inMetaGroup = false
    private var ended = false

    init(onEntry: @escaping (TarHeader) throws -> Void, emit: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.onEntry = onEntry
        self.emit = emit
        header.reserveCapacity(TarHeader.block)
    }

    func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            if ended { return }
            if remaining > 0 {
                let n = Int(min(remaining, Int64(bytes.count - off)))
                try emit(UnsafeRawBufferPointer(rebasing: bytes[off..<(off + n)]))
                remaining -= Int64(n)
                off += n
                continue
            }
            let n = min(TarHeader.block - header.count, bytes.count - off)
            header.append(contentsOf: bytes[off..<(off + n)])
            off += n
            if header.count == TarHeader.block {
                try header.withUnsafeBytes { h in
                    guard let parsed = try TarHeader.parse(h) else { ended = true; return }
                    if !inMetaGroup { try onEntry(parsed) }
                    inMetaGroup = parsed.isMeta
                    try emit(h)
                    remaining = parsed.size + TarHeader.padding(parsed.size)
                    if parsed.type == UInt8(ascii: "1") || parsed.type == UInt8(ascii: "2")
                        || parsed.type == UInt8(ascii: "5")
                    {
                        remaining = 0
                    }
                }
                header.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Checks the stream ended at an entry boundary.
    func finish() throws {
        if remaining > 0 || !header.isEmpty {
            throw CairnError(.backupFailed, "the tar stream ended in the middle of an entry")
        }
    }
}

/// Writes the entries of a tar stream under a root folder: regular files, directories and symbolic links.
/// Entry names that are absolute or contain `..` are refused, no path is followed through a symbolic link
/// (an entry below a link, or over one, is refused or replaces the link), so nothing is written outside the root.
final class TarExtractor {
    let root: String
    /// Rewrites symbolic link targets (tablespace remapping); receives (path, target).
    let linkTarget: (String, String) -> String
    /// A chain restore: what each file entry still adds (see ``ChainFiles``), the archive this stream belongs to,
    /// and whether it is the newest backup's (the only one whose directories and links are laid out).
    let chain: (files: ChainFiles, archive: String, newest: Bool)?
    /// A delta restore (always with `chain`): files are compared block by block with what is on disk and only
    /// differing blocks written; the newest backup's directories are recorded.
    let delta: DeltaTally?
    /// The current entry's blocks, in a chain restore.
    private var placer: BlockPlacer?
    private var header = [UInt8]()
    private var longName: String?
    private var longLink: String?
    private var collecting: [UInt8]?  // data of a GNU long-name entry
    private var collectType: UInt8 = 0
    private var fd: Int32 = -1
    private var dataLeft: Int64 = 0
    private var padLeft: Int64 = 0
    private var ended = false
    /// Directories already known to be real directories inside the root.
    private var safeDirectories: Set<String> = []
    private(set) var files = 0
    private(set) var bytes: Int64 = 0
    private var writeBack = WriteBack()

    init(
        root: String, linkTarget: @escaping (String, String) -> String = { $1 },
        chain: (files: ChainFiles, archive: String, newest: Bool)? = nil, delta: DeltaTally? = nil
    ) {
        self.root = root
        self.linkTarget = linkTarget
        self.chain = chain
        self.delta = delta
    }

    deinit { if fd >= 0 { close(fd) } }

    func feed(_ input: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < input.count && !ended {
            if dataLeft > 0 {
                let n = Int(min(dataLeft, Int64(input.count - off)))
                let chunk = UnsafeRawBufferPointer(rebasing: input[off..<(off + n)])
                if collecting != nil {
                    collecting!.append(contentsOf: chunk)
                } else if let placer {
                    try placer.feed(chunk)
                } else if fd >= 0 {
                    try FileIO.writeAll(fd, chunk)
                    bytes += Int64(chunk.count)
                    writeBack.wrote(fd, chunk.count)
                }
                dataLeft -= Int64(n)
                off += n
                if dataLeft == 0 { try endOfData() }
                continue
            }
            if padLeft > 0 {
                let n = Int(min(padLeft, Int64(input.count - off)))
                padLeft -= Int64(n)
                off += n
                continue
            }
            let n = min(TarHeader.block - header.count, input.count - off)
            header.append(contentsOf: input[off..<(off + n)])
            off += n
            if header.count == TarHeader.block {
                let parsed = try header.withUnsafeBytes { try TarHeader.parse($0) }
                header.removeAll(keepingCapacity: true)
                guard let h = parsed else { ended = true; break }
                try begin(h)
            }
        }
    }

    private func safePath(_ name: String) throws -> String {
        var n = name
        while n.hasPrefix("./") { n.removeFirst(2) }
        while n.hasSuffix("/") { n.removeLast() }
        let parts = n.split(separator: "/")
        if n.hasPrefix("/") || parts.contains("..") {
            throw CairnError(
                .dataCorrupt, "the backup holds an unsafe path \"\(name)\"; refusing to write outside \(root)")
        }
        return n.isEmpty ? root : root + "/" + n
    }

    /// Bundles restore in parallel, so a file may arrive before the entry of its directory: create parents.
    /// Every parent must be a real directory, never a symbolic link (which could lead outside the root).
    private func ensureParent(_ path: String) throws {
        let parent = (path as NSString).deletingLastPathComponent
        guard parent.count > root.count, !safeDirectories.contains(parent) else { return }
        try ensureParent(parent)
        var st = stat()
        if lstat(parent, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw CairnError(
                    .dataCorrupt, "the backup writes below \(parent), which is not a directory; refusing to follow it")
            }
        } else if mkdir(parent, 0o700) != 0 && errno != EEXIST {
            throw ioError("create directory \(parent)")
        }
        safeDirectories.insert(parent)
    }

    /// Removes a symbolic link (or file) where a directory or file is about to be created, so creation never
    /// follows a link.
    private func removeLink(_ path: String) {
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK { unlink(path) }
    }

    /// A delta restore: removes what stands where the backup has a directory (`forDirectory`) or a file: a file
    /// or link where a directory goes, a directory where a file goes, and a file with other hard links (which
    /// `pg_upgrade --link` shares with another cluster: it is written anew, never through the shared inode).
    private func makeWay(_ path: String, forDirectory: Bool) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        if isDirectory && !forDirectory {
            try? FileManager.default.removeItem(atPath: path)
        } else if !isDirectory && (forDirectory || st.st_nlink > 1) {
            unlink(path)
        }
    }

    private func begin(_ h: TarHeader) throws {
        try Interruption.check()  // an interrupt stops the restore between files, before its clean-up is undone
        let name = longName ?? h.name
        let link = longLink ?? h.linkName
        if !h.isMeta { longName = nil; longLink = nil }
        padLeft = TarHeader.padding(h.size)
        let olderInChain = chain.map { !$0.newest } ?? false
        switch h.type {
        case UInt8(ascii: "L"), UInt8(ascii: "K"):
            collecting = []
            collectType = h.type
            dataLeft = h.size
        case UInt8(ascii: "x"), UInt8(ascii: "g"):
            collecting = []
            collectType = h.type
            dataLeft = h.size
        case UInt8(ascii: "5") where olderInChain, UInt8(ascii: "2") where olderInChain:
            padLeft = 0  // an older backup of a chain: the newest one's directories and links are the ones that exist
        case 0 where chain != nil, UInt8(ascii: "0") where chain != nil, UInt8(ascii: "7") where chain != nil,
            BlockDelta.typeflag where chain != nil:
            try beginInChain(h, name: name)
        case BlockDelta.typeflag:
            throw CairnError(.dataCorrupt, "the backup holds changed blocks of \(name) outside an incremental chain")
        case UInt8(ascii: "5"):
            let p = try safePath(name)
            try ensureParent(p)
            removeLink(p)
            if let delta, let chain {
                makeWay(p, forDirectory: true)
                delta.directory(chain.files.manifestPath(archive: chain.archive, path: name))
            }
            if mkdir(p, mode_t(h.mode & 0o7777)) != 0 && errno != EEXIST { throw ioError("create directory \(p)") }
            chmod(p, mode_t(h.mode & 0o7777))
            safeDirectories.insert(p)
            padLeft = 0
        case UInt8(ascii: "2"):
            let p = try safePath(name)
            try ensureParent(p)
            unlink(p)
            if symlink(linkTarget(name, link), p) != 0 { throw ioError("create symbolic link \(p)") }
            padLeft = 0
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"):
            let p = try safePath(name)
            try ensureParent(p)
            unlink(p)
            fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 { throw ioError("create \(p)") }
            fchmod(fd, mode_t(h.mode & 0o7777))  // the archived mode, whatever the umask
            files += 1
            dataLeft = h.size
            if dataLeft == 0 { try endOfData() }
        default:
            // Hard links, devices and FIFOs never occur in a PostgreSQL base backup; skip their data.
            dataLeft = h.size
        }
    }

    /// A file entry of a chain restore: skipped, written whole, or only its blocks no newer backup had.
    private func beginInChain(_ h: TarHeader, name: String) throws {
        let (chainFiles, archive, _) = chain!
        let isDelta = h.type == BlockDelta.typeflag
        dataLeft = h.size
        switch chainFiles.decide(archive: archive, path: name, delta: isDelta) {
        case .skip:
            break
        case .whole where delta != nil:
            // A delta restore keeps the file and rewrites only the blocks that differ.
            let p = try safePath(name)
            try ensureParent(p)
            removeLink(p)
            makeWay(p, forDirectory: false)
            fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 { throw ioError("open \(p)") }
            fchmod(fd, mode_t(h.mode & 0o7777))
            files += 1
            placer = BlockPlacer(
                blocks: ChainFiles.FileBlocks(size: h.size), fd: fd, path: p, isDelta: false, entrySize: h.size,
                tally: delta)
        case .whole:
            let p = try safePath(name)
            try ensureParent(p)
            unlink(p)
            fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 { throw ioError("create \(p)") }
            fchmod(fd, mode_t(h.mode & 0o7777))
            files += 1
        case .blocks(let blocks):
            let p = try safePath(name)
            try ensureParent(p)
            removeLink(p)
            if delta != nil { makeWay(p, forDirectory: false) }
            fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 { throw ioError("open \(p)") }
            fchmod(fd, mode_t(h.mode & 0o7777))
            placer = BlockPlacer(blocks: blocks, fd: fd, path: p, isDelta: isDelta, entrySize: h.size, tally: delta)
        }
        if dataLeft == 0 { try endOfData() }
    }

    private func endOfData() throws {
        if let c = collecting {
            let text = String(decoding: c.prefix { $0 != 0 }, as: UTF8.self)
            switch collectType {
            case UInt8(ascii: "L"): longName = text
            case UInt8(ascii: "K"): longLink = text
            default:
                // pax: take `path` and `linkpath` records ("<len> key=value\n").
                for rec in text.split(separator: "\n") {
                    guard let sp = rec.firstIndex(of: " ") else { continue }
                    let kv = rec[rec.index(after: sp)...]
                    if kv.hasPrefix("path=") { longName = String(kv.dropFirst(5)) }
                    if kv.hasPrefix("linkpath=") { longLink = String(kv.dropFirst(9)) }
                }
            }
            collecting = nil
        }
        if let p = placer {
            placer = nil
            try p.finish()
            bytes += p.written
        }
        if fd >= 0 {
            writeBack.finished(fd)
            close(fd)
            fd = -1
        }
    }

    /// Checks the stream ended cleanly.
    func finish() throws {
        if dataLeft > 0 || (!header.isEmpty && !ended) {
            throw CairnError(.dataCorrupt, "a backup bundle ended in the middle of a file")
        }
    }

    private func ioError(_ what: String) -> CairnError {
        let e = errno
        let code: ErrorCode = (e == ENOSPC || e == EDQUOT) ? .repoNoSpace : .localIO
        return CairnError(
            code, "cannot \(what): \(String(cString: strerror(e)))",
            hint: e == ENOSPC ? "free space on the restore target's file system" : nil)
    }
}
