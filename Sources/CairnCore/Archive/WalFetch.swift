import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn wal-fetch %f %p` for `restore_command`, with a prefetch spool.
///
/// A segment is served from the spool when the prefetcher already has it (renamed into place: no copy) and it
/// passes its check (size, long page header, CRC-32C recorded at prefetch), otherwise fetched directly. Either
/// way its content was verified (zstd checksums, trailer SHA-256) when it was downloaded, and it reaches `%p`
/// by a rename, so PostgreSQL never reads a partial file. After a segment is served, a detached prefetcher
/// downloads the next segments in parallel.
public enum WalFetch {
    public enum Outcome: String, Sendable, Codable {
        case fetched
        case fromSpool = "from-spool"
    }

    public struct Result: Sendable, Codable {
        public var file: String
        public var outcome: Outcome
        public var size: Int64
    }

    static let logger = Logger(label: "cairn.wal-fetch")

    /// The prefetch spool's folder name, in `pg_wal`.
    public static let spoolName = "cairn-prefetch"

    /// The spool next to `%p` (`pg_wal/cairn-prefetch` during recovery).
    public static func spoolDirectory(forDestination dest: String) -> String {
        let dir = (dest as NSString).deletingLastPathComponent
        return (dir.isEmpty ? "." : dir) + "/" + spoolName
    }

    /// Fetches `name` to `dest`. Throws `wal.not-found` when the repository does not have it (and only when the
    /// repository itself is there).
    public static func run(repo: any Repository, pipeline: Pipeline, name: String, dest: String) throws -> Result {
        try run(repos: .single(repo), pipeline: pipeline, name: name, dest: dest)
    }

    /// Fetches `name` to `dest` from the first repository that has it (see ``download(repos:pipeline:file:to:beforeRename:)``).
    public static func run(repos: RepositorySet, pipeline: Pipeline, name: String, dest: String) throws -> Result {
        guard let file = WALFileName(name) else {
            throw CairnError(
                .walInvalidName, "\(name) is not a WAL file name", hint: "restore_command must pass %f and %p")
        }
        if case .segment = file, let size = serveFromSpool(spoolDirectory(forDestination: dest), name: name, dest: dest)
        {
            return Result(file: name, outcome: .fromSpool, size: size)
        }
        let size = try download(repos: repos, pipeline: pipeline, file: file, to: dest) { _, _ in }.size
        return Result(file: name, outcome: .fetched, size: size)
    }

    /// Hands a spooled segment over to `dest` once it has passed its check (see ``SpoolCheck``); returns its size,
    /// or nil when the spool has no good copy (a bad one is deleted, with a warning).
    static func serveFromSpool(_ spool: String, name: String, dest: String) -> Int64? {
        let spooled = spool + "/" + name
        guard access(spooled, F_OK) == 0 else { return nil }
        // Check the very file that will be served: take it out of the spool first.
        let taken = dest + ".cairn-tmp-\(getpid())"
        guard rename(spooled, taken) == 0 else { return nil }
        let check = SpoolCheck.path(of: spooled)
        defer { unlink(check) }
        if let problem = SpoolCheck.problem(path: taken, name: name, checkPath: check) {
            unlink(taken)
            logger.warning(
                "a prefetched segment failed its check and is fetched again",
                metadata: ["file": "\(name)", "problem": "\(problem)"])
            return nil
        }
        var st = stat()
        guard stat(taken, &st) == 0, rename(taken, dest) == 0 else {
            unlink(taken)
            return nil
        }
        return Int64(st.st_size)
    }

    /// Downloads and verifies one file into `path` atomically. Throws `wal.not-found` if absent.
    static func download(repo: any Repository, pipeline: Pipeline, file: WALFileName, to path: String) throws -> Int64 {
        // No fsync: PostgreSQL reads the file at once, and after a crash recovery asks for it again.
        try download(repo: repo, pipeline: pipeline, file: file, to: path) { _, _ in }.size
    }

    /// Downloads and verifies one file into `path` atomically, passing the open temporary file and the CRC-32C of
    /// its content to `beforeRename`. Throws `wal.not-found` if absent.
    static func download(
        repo: any Repository, pipeline: Pipeline, file: WALFileName, to path: String,
        beforeRename: (_ fd: Int32, _ crc32c: UInt32) throws -> Void
    ) throws -> (size: Int64, crc32c: UInt32) {
        let tmp = path + ".cairn-tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CairnError(.localIO, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if fd >= 0 { close(fd) }
            if !ok { unlink(tmp) }
        }
        let digest: ObjectDigest
        var crc: UInt32 = 0
        do {
            digest = try pipeline.load(repo, key: Layout.walKey(file)) { chunk in
                try FileIO.writeAll(fd, chunk)
                crc = SpoolCheck.crc32c(chunk, continuing: crc)
            }
        } catch let e as CairnError where e.code == .repoObjectMissing {
            try requireRepository(repo, missing: file)
            throw CairnError(.walNotFound, "\(file) is not in the repository")
        }
        try beforeRename(fd, crc)
        guard rename(tmp, path) == 0 else {
            throw CairnError(.localIO, "cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
        ok = true
        return (digest.size, crc)
    }

    /// Makes sure a missing file means the end of the archive: the repository's `cairn.json` must be there and
    /// read. An unmounted or moved local repository (an empty mount point) would otherwise look like an archive
    /// that ends here, and PostgreSQL would end recovery early, silently.
    static func requireRepository(_ repo: any Repository, missing file: WALFileName) throws {
        do {
            _ = try RepositoryInfo.require(from: repo)
        } catch let e as CairnError where e.code == .repoUninitialized {
            throw CairnError(
                .repoUninitialized,
                "\(file) is not in \(repo.location), and neither is the repository's cairn.json: the repository is missing (unmounted or moved?), so the end of the archive cannot be told",
                hint:
                    "make the repository available at \(repo.location) again (check the mount); recovery stops instead of ending early"
            )
        }
    }

    /// Removes spooled segments that sort before `current` (already replayed or skipped).
    public static func pruneSpool(_ spool: String, before current: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: spool) else { return }
        for n in names where n.count == 24 && n < current { unlink(spool + "/" + n) }
        for n in names where n.hasSuffix(SpoolCheck.suffix) && String(n.prefix(24)) < current {
            unlink(spool + "/" + n)
        }
        for n in names where n.contains(".cairn-tmp-") {
            var st = stat()
            if stat(spool + "/" + n, &st) == 0, Date().timeIntervalSince1970 - Double(st.st_mtim.tv_sec) > 600 {
                unlink(spool + "/" + n)
            }
        }
    }

    /// Downloads up to `count` segments after `first` into the spool, `parallelism` at a time, stopping at the
    /// first one the repository does not have. Only one prefetcher runs per spool (a lock file). Each segment is
    /// fsynced, with its check record (see ``SpoolCheck``, facts from `info`), before it is renamed into the spool.
    public static func prefetch(
        repo: any Repository, pipeline: Pipeline, info: RepositoryInfo, first: WALSegment,
        count: Int, spool: String, parallelism: Int
    ) throws -> Int {
        try prefetch(
            repos: .single(repo), pipeline: pipeline, info: info, first: first,
            count: count, spool: spool, parallelism: parallelism)
    }

    /// Prefetches from the first repository that has each segment (see ``prefetch(repo:pipeline:info:first:count:spool:parallelism:)``).
    public static func prefetch(
        repos: RepositorySet, pipeline: Pipeline, info: RepositoryInfo, first: WALSegment,
        count: Int, spool: String, parallelism: Int
    ) throws -> Int {
        mkdir(spool, 0o700)
        guard let lockFd = SpoolLock.acquire(spool) else { return 0 }  // another prefetcher is at work
        defer { close(lockFd) }
        let pool = WorkerPool(threads: max(1, parallelism), maxQueued: 1, name: "cairn-prefetch")
        let fetched = Counter()
        var s = first
        for _ in 0..<count {
            let seg = s
            s = s.next
            if access(spool + "/" + seg.name, F_OK) == 0 { continue }
            let ok = pool.submit {
                do {
                    try spoolSegment(repos: repos, pipeline: pipeline, info: info, segment: seg, spool: spool)
                    fetched.add()
                } catch let e as CairnError where e.code == .walNotFound {
                    throw e  // the end of the archive: stop queueing more
                }
            }
            if !ok { break }
        }
        do { try pool.wait() } catch let e as CairnError where e.code == .walNotFound {}
        return fetched.value
    }

    /// Downloads one segment into the spool durably: content fsynced and its check record written before the
    /// rename, so that a crash leaves either nothing or a segment that passes its check.
    static func spoolSegment(
        repos: RepositorySet, pipeline: Pipeline, info: RepositoryInfo, segment: WALSegment,
        spool: String
    ) throws {
        let path = spool + "/" + segment.name
        _ = try download(repos: repos, pipeline: pipeline, file: .segment(segment.name), to: path) { fd, crc in
            guard fsync(fd) == 0 else {
                throw CairnError(
                    .localIO, "cannot fsync the prefetched \(segment.name): \(String(cString: strerror(errno)))")
            }
            try SpoolCheck(
                crc32c: crc, systemIdentifier: info.systemIdentifier, pgMajor: info.pgMajor,
                segmentSize: info.walSegmentSize
            ).write(for: path)
        }
        syncDirectory(spool)
    }

    /// fsyncs a directory (its entries: renames into it).
    static func syncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// Removes the spool (`recovery_end_command`).
    public static func removeSpool(_ spool: String) {
        try? FileManager.default.removeItem(atPath: spool)
    }
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
