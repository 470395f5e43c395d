import CairnBase
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A repository in a local (or mounted) folder: the embedded default.
///
/// Writes go to a temporary file in the target directory, which is fsynced and then renamed (or, for
/// create-only writes, hard-linked, which fails atomically when the key exists) into place, and the directory
/// is fsynced. Temporary files carry `.cairn-tmp-` in their name and are never listed.
public final class LocalRepository: Repository {
    /// The root folder.
    public let root: String
    static let tempMarker = ".cairn-tmp-"

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    public var location: String { root }
    /// The root's real absolute path (symbolic links and relative parts resolved), or the root as configured
    /// while it does not exist.
    public var identity: String {
        guard let resolved = realpath(root, nil) else {
            return root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }
    public var capabilities: RepositoryCapabilities { [.atomicCreateOnly, .durableWrites, .persistent] }

    func path(_ key: String) throws -> String {
        try validateKey(key)
        if key.contains(Self.tempMarker) {
            throw CairnError(.repoProtocol, "invalid object key \"\(key)\": contains \(Self.tempMarker)")
        }
        return root + "/" + key
    }

    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        try putThroughWriter(key, bytes, options: options)
    }

    public func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter {
        let final = try path(key)
        let dir = (final as NSString).deletingLastPathComponent
        try makeDirectories(dir)
        let tmp =
            dir + "/" + ((final as NSString).lastPathComponent) + Self.tempMarker
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        if fd < 0 { throw errnoError(errno, "create \(tmp)") }
        return Writer(repo: self, key: key, final: final, tmp: tmp, fd: fd, options: options)
    }

    @discardableResult
    public func get(
        _ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> ObjectInfo {
        let p = try path(key)
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { throw CairnError.missing(key, in: location) }
            throw errnoError(errno, "open \(p)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw errnoError(errno, "stat \(p)") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw CairnError.missing(key, in: location) }
        let size = Int64(st.st_size)
        var offset = min(range?.start ?? 0, size)
        let end = min(range?.end ?? size, size)
        let chunk = 1 << 20
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        while offset < end {
            let want = Int(min(Int64(chunk), end - offset))
            let n = pread(fd, buf.baseAddress, want, off_t(offset))
            if n < 0 {
                if errno == EINTR { continue }
                throw errnoError(errno, "read \(p)")
            }
            if n == 0 { throw CairnError(.repoIO, "object \(key) in \(location) ended early at byte \(offset)") }
            try sink(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            offset += Int64(n)
        }
        return ObjectInfo(key: key, size: size, lastModified: Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec)))
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        let p = try path(key)
        var st = stat()
        if stat(p, &st) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw errnoError(errno, "stat \(p)")
        }
        if (st.st_mode & S_IFMT) != S_IFREG { return nil }
        return ObjectInfo(
            key: key, size: Int64(st.st_size), lastModified: Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec)))
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        // Walk only the deepest directory that the prefix fully names.
        let dirPart = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        var out: [ObjectInfo] = []
        try walk(dirKey: dirPart, prefix: prefix, into: &out)
        out.sort { $0.key < $1.key }
        return out
    }

    private func walk(dirKey: String, prefix: String, into out: inout [ObjectInfo]) throws {
        let dirPath = dirKey.isEmpty ? root : root + "/" + dirKey
        guard let d = opendir(dirPath) else {
            if errno == ENOENT || errno == ENOTDIR { return }
            throw errnoError(errno, "list \(dirPath)")
        }
        defer { closedir(d) }
        while let ent = readdir(d) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." || name.contains(Self.tempMarker) { continue }
            let key = dirKey.isEmpty ? name : dirKey + "/" + name
            var st = stat()
            guard lstat(dirPath + "/" + name, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                // Descend only where keys below can match the prefix.
                if (key + "/").hasPrefix(prefix) || prefix.hasPrefix(key + "/") {
                    try walk(dirKey: key, prefix: prefix, into: &out)
                }
            } else if (st.st_mode & S_IFMT) == S_IFREG && key.hasPrefix(prefix) {
                out.append(
                    ObjectInfo(
                        key: key, size: Int64(st.st_size),
                        lastModified: Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec))))
            }
        }
    }

    public func delete(_ keys: [String]) throws {
        var dirs = Set<String>()
        for key in keys {
            let p = try path(key)
            if unlink(p) != 0 && errno != ENOENT && errno != ENOTDIR { throw errnoError(errno, "delete \(p)") }
            dirs.insert((p as NSString).deletingLastPathComponent)
        }
        // Remove directories left empty, deepest first, never the root itself.
        for dir in dirs.sorted(by: { $0.count > $1.count }) {
            var d = dir
            while d.count > root.count && d.hasPrefix(root + "/") && rmdir(d) == 0 {
                d = (d as NSString).deletingLastPathComponent
            }
        }
    }

    /// Removes temporary files of interrupted writes that are older than `age` seconds. Returns how many.
    public func removeStaleTemporaries(olderThan age: Double, now: Date = Date()) throws -> Int {
        var removed = 0
        func scan(_ dir: String) {
            guard let d = opendir(dir) else { return }
            defer { closedir(d) }
            while let ent = readdir(d) {
                let name = withUnsafePointer(to: ent.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name == "." || name == ".." { continue }
                let p = dir + "/" + name
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR { scan(p); continue }
                if name.contains(Self.tempMarker), now.timeIntervalSince1970 - Double(st.st_mtim.tv_sec) > age,
                    unlink(p) == 0
                {
                    removed += 1
                }
            }
        }
        scan(root)
        return removed
    }

    // MARK: - helpers

    /// `mkdir -p`, fsyncing the parent of every directory it creates so the new entries survive a crash.
    func makeDirectories(_ dir: String) throws {
        var st = stat()
        if stat(dir, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { return }
            throw CairnError(
                .repoIO, "\(dir) exists and is not a directory", hint: "remove it or choose another repository path")
        }
        let parent = (dir as NSString).deletingLastPathComponent
        if parent != dir && !parent.isEmpty { try makeDirectories(parent) }
        if mkdir(dir, 0o750) != 0 && errno != EEXIST { throw errnoError(errno, "create directory \(dir)") }
        fsyncPath(parent)
    }

    func fsyncPath(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    func errnoError(_ err: Int32, _ what: String) -> CairnError {
        let reason = String(cString: strerror(err))
        switch err {
        case EACCES, EPERM:
            return CairnError(
                .repoAccessDenied, "cannot \(what): \(reason)",
                hint:
                    "make \(root) writable by the user cairn runs as (uid \(getuid())), or set repository.path to a folder it owns"
            )
        case EROFS:
            return CairnError(
                .repoAccessDenied, "cannot \(what): read-only file system",
                hint: "mount \(root) read-write or choose another repository.path")
        case ENOSPC, EDQUOT:
            return CairnError(
                .repoNoSpace, "cannot \(what): no space left on device",
                hint: "free space on the file system holding \(root) (run `cairn expire`) or move the repository")
        default:
            return CairnError(.repoIO, "cannot \(what): \(reason)")
        }
    }

    final class Writer: ObjectWriter {
        let repo: LocalRepository
        let key: String
        let final: String
        let tmp: String
        var fd: Int32
        let options: PutOptions
        var size: Int64 = 0

        init(repo: LocalRepository, key: String, final: String, tmp: String, fd: Int32, options: PutOptions) {
            self.repo = repo
            self.key = key
            self.final = final
            self.tmp = tmp
            self.fd = fd
            self.options = options
        }

        deinit { abort() }

        func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard fd >= 0 else { throw CairnError(.internal, "write to \(key) after finish or abort") }
            var off = 0
            while off < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw repo.errnoError(errno, "write \(tmp)")
                }
                off += n
            }
            size += Int64(bytes.count)
        }

        func finish() throws -> ObjectInfo {
            guard fd >= 0 else { throw CairnError(.internal, "finish of \(key) after finish or abort") }
            if fsync(fd) != 0 { let e = errno; abort(); throw repo.errnoError(e, "fsync \(tmp)") }
            close(fd)
            fd = -1
            if options.createOnly {
                if link(tmp, final) != 0 {
                    let e = errno
                    unlink(tmp)
                    if e == EEXIST { throw CairnError.exists(key, in: repo.location) }
                    throw repo.errnoError(e, "link \(final)")
                }
                unlink(tmp)
            } else if rename(tmp, final) != 0 {
                let e = errno
                unlink(tmp)
                throw repo.errnoError(e, "rename \(tmp)")
            }
            repo.fsyncPath((final as NSString).deletingLastPathComponent)
            return ObjectInfo(key: key, size: size, lastModified: Date())
        }

        func abort() {
            if fd >= 0 {
                close(fd)
                fd = -1
                unlink(tmp)
            }
        }
    }
}
