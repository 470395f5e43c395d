import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn wal-fetch %f %p` for `restore_command`, with a prefetch spool.
///
/// A segment is served from the spool when the prefetcher already has it (renamed into place: no copy),
/// otherwise fetched directly. Either way its content was verified (zstd checksums, trailer SHA-256) before it
/// reached `%p`, and it is written to a temporary name, fsynced and renamed, so PostgreSQL never reads a
/// partial file. After a segment is served, a detached prefetcher downloads the next segments in parallel.
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

    /// The spool next to `%p` (`pg_wal/cairn-prefetch` during recovery).
    public static func spoolDirectory(forDestination dest: String) -> String {
        let dir = (dest as NSString).deletingLastPathComponent
        return (dir.isEmpty ? "." : dir) + "/cairn-prefetch"
    }

    /// Fetches `name` to `dest`. Throws `wal.not-found` when the repository does not have it.
    public static func run(repo: any Repository, pipeline: Pipeline, name: String, dest: String) throws -> Result {
        guard let file = WALFileName(name) else {
            throw CoreError(.walInvalidName, "\(name) is not a WAL file name", hint: "restore_command must pass %f and %p")
        }
        let spool = spoolDirectory(forDestination: dest)
        if case .segment = file, access(spool + "/" + name, F_OK) == 0 {
            if rename(spool + "/" + name, dest) == 0 {
                var st = stat()
                stat(dest, &st)
                return Result(file: name, outcome: .fromSpool, size: Int64(st.st_size))
            }
        }
        let size = try download(repo: repo, pipeline: pipeline, file: file, to: dest)
        return Result(file: name, outcome: .fetched, size: size)
    }


    /// Downloads and verifies one file into `path` atomically. Throws `wal.not-found` if absent.
    static func download(repo: any Repository, pipeline: Pipeline, file: WALFileName, to path: String) throws -> Int64 {
        let tmp = path + ".cairn-tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CoreError(.localIO, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if fd >= 0 { close(fd) }
            if !ok { unlink(tmp) }
        }
        let digest: ObjectDigest
        do {
            digest = try pipeline.load(repo, key: Layout.walKey(file)) { try FileIO.writeAll(fd, $0) }
        } catch let e as StorageError where e.code == .repoObjectMissing {
            throw CoreError(.walNotFound, "\(file) is not in the repository")
        }
        // No fsync: PostgreSQL reads the file at once, and after a crash recovery asks for it again.
        guard rename(tmp, path) == 0 else { throw CoreError(.localIO, "cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))") }
        ok = true
        return digest.size
    }

    /// Removes spooled segments that sort before `current` (already replayed or skipped).
    public static func pruneSpool(_ spool: String, before current: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: spool) else { return }
        for n in names where n.count == 24 && n < current { unlink(spool + "/" + n) }
        for n in names where n.contains(".cairn-tmp-") {
            var st = stat()
            if stat(spool + "/" + n, &st) == 0, Date().timeIntervalSince1970 - Double(st.st_mtim.tv_sec) > 600 {
                unlink(spool + "/" + n)
            }
        }
    }

    /// Downloads up to `count` segments after `first` into the spool, `parallelism` at a time, stopping at the
    /// first one the repository does not have. Only one prefetcher runs per spool (a lock file).
    public static func prefetch(repo: any Repository, pipeline: Pipeline, first: WALSegment, count: Int,
                                spool: String, parallelism: Int) throws -> Int {
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
                    _ = try download(repo: repo, pipeline: pipeline, file: .segment(seg.name), to: spool + "/" + seg.name)
                    fetched.add()
                } catch let e as CoreError where e.code == .walNotFound {
                    throw e  // the end of the archive: stop queueing more
                }
            }
            if !ok { break }
        }
        do { try pool.wait() } catch let e as CoreError where e.code == .walNotFound {} 
        return fetched.value
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
