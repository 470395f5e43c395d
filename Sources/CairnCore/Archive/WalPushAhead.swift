import CairnBase
import CairnPostgres
import CairnStorage
import Crypto
import Foundation
import Synchronization

/// Asynchronous archiving (`archive.async: true`), as pgBackRest's archive-async: when `.ready` files pile up,
/// `wal-push` starts a detached worker (`cairn wal-push-ahead`) that pushes them, oldest first, on
/// `limits.parallelism` threads, and leaves a record for each one durably stored and confirmed. PostgreSQL's next
/// `wal-push` calls are acknowledged from those records without contacting the repository, while the worker
/// keeps pushing.
///
/// The rule that a file is acknowledged only once stored is kept: a record (`pg_wal/cairn-archive/<file>.ok`) is
/// written, synced and renamed into place only after the object was stored and confirmed, and it is honoured only
/// for the same store (``Repository/identity``: a bucket of the same name on another endpoint is another store)
/// and the very file the worker read: same device, inode, size and modification
/// and change times (to the nanosecond), checked with one `stat` so an acknowledgement reads nothing. A segment
/// PostgreSQL has marked `.ready` is never rewritten in place; any other file by that name fails the check and is
/// pushed again (a repeated push of identical content is harmless, different content is refused).
/// Records are removed once PostgreSQL has marked their file done (its `.ready` is gone).
public enum WalPushAhead {
    /// What is known of a file pushed ahead.
    struct Record: Codable, Equatable {
        /// The identity of the store that holds the file (``Repository/identity``: endpoint, region, bucket and
        /// prefix, or a real path), not just its location.
        var store: String
        var key: String
        var size: Int64
        var storedSize: Int64
        /// The file the worker read (nil in records of older versions, which are then not used).
        var identity: Identity?
        /// The repositories it was acknowledged without (``WalPush/Result/behind``).
        var behind: [String]? = nil

        enum CodingKeys: String, CodingKey {
            case store, key, size, identity, behind
            case storedSize = "stored_size"
        }
    }

    /// What tells a file on disk apart without reading it.
    struct Identity: Codable, Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var mtimeNanoseconds: Int64
        var ctimeNanoseconds: Int64

        static func of(_ path: String) -> Identity? {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            return Identity(
                device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                mtimeNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                ctimeNanoseconds: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
        }
    }

    static let spoolName = "cairn-archive"

    /// `pg_wal/cairn-archive` for a WAL directory.
    public static func spool(walDirectory: String) -> String {
        (walDirectory.isEmpty ? "." : walDirectory) + "/" + spoolName
    }

    /// The spool next to `%p` (`pg_wal/<file>`).
    static func spool(for path: String) -> String { spool(walDirectory: (path as NSString).deletingLastPathComponent) }

    /// Acknowledges `path` from its record, when one matches the file and `store` (the repository's
    /// ``Repository/identity``); removes a record that does not match.
    static func acknowledge(path: String, store: String) -> WalPush.Result? {
        let name = (path as NSString).lastPathComponent
        let recordPath = spool(for: path) + "/" + name + ".ok"
        guard let data = FileManager.default.contents(atPath: recordPath) else { return nil }
        guard let r = try? JSONDecoder().decode(Record.self, from: data), r.store == store,
            let identity = r.identity, identity.size == r.size, identity == Identity.of(path)
        else {
            unlink(recordPath)
            WalPush.logger.warning(
                "ignoring a push-ahead record that does not match the file", metadata: ["file": "\(name)"])
            return nil
        }
        return WalPush.Result(
            file: name, key: r.key, outcome: .pushedAhead, size: r.size, storedSize: r.storedSize, behind: r.behind)
    }

    /// Files waiting in `archive_status` (`.ready`) without a record, oldest first, at most `limit`, leaving out
    /// `excluding`.
    static func ready(walDirectory dir: String, excluding: Set<String> = [], limit: Int) -> [String] {
        let spool = spool(walDirectory: dir)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/archive_status")) ?? [])
            .filter { $0.hasSuffix(".ready") }
            .map { String($0.dropLast(6)) }
            .filter { !excluding.contains($0) && WALFileName($0) != nil && access(spool + "/" + $0 + ".ok", F_OK) != 0 }
        return Array(names.sorted().prefix(limit))
    }

    /// True when files other than `path`'s wait to be archived (a backlog worth a worker).
    static func backlog(beside path: String) -> Bool {
        !ready(
            walDirectory: (path as NSString).deletingLastPathComponent,
            excluding: [(path as NSString).lastPathComponent], limit: 1
        ).isEmpty
    }

    /// Removes records of files PostgreSQL no longer waits for (their `.ready` is gone) and leftover temporaries.
    static func sweep(walDirectory dir: String) {
        let spool = spool(walDirectory: dir)
        for f in (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] {
            guard let dot = f.lastIndex(of: "."), [".ok", ".failed", ".tmp"].contains(String(f[dot...])) else {
                continue
            }
            let file = String(f[..<dot])
            if f.hasSuffix(".tmp") {
                // A record being written right now is a .tmp too: only leftovers of a crash are old.
                var st = stat()
                if stat(spool + "/" + f, &st) == 0, Double(st.st_mtim.tv_sec) < Date().timeIntervalSince1970 - 600 {
                    unlink(spool + "/" + f)
                }
            } else if access(dir + "/archive_status/" + file + ".ready", F_OK) != 0 {
                unlink(spool + "/" + f)
            }
        }
    }

    /// Writes a record atomically and durably.
    static func write(_ record: Record, file: String, spool: String) throws {
        try? FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        let tmp = spool + "/" + file + ".tmp"
        let bytes = Array(try JSONEncoder().encode(record))
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CairnError(.localIO, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0) }
        guard fsync(fd) == 0, rename(tmp, spool + "/" + file + ".ok") == 0 else {
            throw CairnError(
                .localIO, "cannot write the push-ahead record of \(file): \(String(cString: strerror(errno)))")
        }
        let dfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Waits until the worker has recorded `path` (then acknowledges it), as long as a worker runs or was just
    /// started; nil when it gave up (the caller then pushes the file itself).
    static func waitForRecord(path: String, store: String, started: Date?, timeout: Double) -> WalPush.Result? {
        let spool = spool(for: path)
        let name = (path as NSString).lastPathComponent
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if access(spool + "/" + name + ".ok", F_OK) == 0 { return acknowledge(path: path, store: store) }
            if unlink(spool + "/" + name + ".failed") == 0 { return nil }  // the worker could not push it
            let justStarted = started.map { Date().timeIntervalSince($0) < 2 } ?? false
            guard SpoolLock.held(spool) || justStarted else {
                // The worker ended; it may have written the record just before.
                return access(spool + "/" + name + ".ok", F_OK) == 0 ? acknowledge(path: path, store: store) : nil
            }
            usleep(10_000)
        }
        return nil
    }

    /// The worker: pushes waiting files of `walDirectory`, oldest first, `parallelism` at a time, recording each
    /// one, until nothing has waited for `idleExit` seconds. Returns how many it stored; 0 at once when another
    /// worker holds the spool. A failed push is only logged: PostgreSQL's own call for that file pushes it again
    /// and reports the error.
    public static func work(
        repos: RepositorySet, pipeline: Pipeline, walDirectory dir: String, parallelism: Int,
        maxBacklog: Int64 = 1 << 30, idleExit: Double = 2
    ) throws -> Int {
        let spool = spool(walDirectory: dir)
        guard let lockFd = SpoolLock.acquire(spool) else { return 0 }
        defer { close(lockFd) }
        let store = repos.identity
        let pool = WorkerPool(threads: max(1, parallelism), maxQueued: 1, name: "cairn-push-ahead")
        let inFlight = Mutex(Set<String>())
        let failed = Mutex(Set<String>())  // left to PostgreSQL's own call, which reports the error
        let stored = Mutex(0)
        // One read buffer per lane, reused: reading each 16 MiB segment into new memory cost a tenth of the
        // worker's CPU in page faults.
        let buffers = Mutex([[UInt8]]())
        var idleSince = Date()
        while !Interruption.requested {
            sweep(walDirectory: dir)
            let names = ready(
                walDirectory: dir, excluding: inFlight.withLock { $0 }.union(failed.withLock { $0 }),
                limit: max(1, parallelism) * 2)
            if names.isEmpty {
                if inFlight.withLock({ $0.isEmpty }) && Date().timeIntervalSince(idleSince) > idleExit { break }
                usleep(20_000)
                continue
            }
            idleSince = Date()
            for name in names {
                inFlight.withLock { _ = $0.insert(name) }
                pool.submit {
                    defer { inFlight.withLock { _ = $0.remove(name) } }
                    var b = buffers.withLock { $0.popLast() } ?? []
                    defer { buffers.withLock { $0.append(b) } }
                    do {
                        try pushAhead(
                            name, buffer: &b, repos: repos, pipeline: pipeline, walDirectory: dir,
                            maxBacklog: maxBacklog, store: store, spool: spool)
                        stored.withLock { $0 += 1 }
                    } catch {
                        failed.withLock { _ = $0.insert(name) }
                        recordFailure(name, error, spool: spool)
                    }
                }
            }
        }
        try? pool.wait()
        return stored.withLock { $0 }
    }

    /// Pushes one waiting file and records it, once stored where the policy says, for the very file read.
    static func pushAhead(
        _ name: String, buffer b: inout [UInt8], repos: RepositorySet, pipeline: Pipeline, walDirectory dir: String,
        maxBacklog: Int64, store: String, spool: String
    ) throws {
        let before = Identity.of(dir + "/" + name)
        let f = try WalPush.read(dir + "/" + name, into: &b)
        let r = try WalPush.push(
            file: f, bytes: b, repos: repos, pipeline: pipeline, walDirectory: dir, maxBacklog: maxBacklog)
        let identity = Identity.of(dir + "/" + name)
        guard let identity, identity == before, identity.size == r.size else {
            throw CairnError(.localIO, "\(name) changed while it was pushed ahead")
        }
        try write(
            Record(
                store: store, key: r.key, size: r.size, storedSize: r.storedSize, identity: identity, behind: r.behind),
            file: name, spool: spool)
    }

    /// Leaves `<file>.failed` (the error) for PostgreSQL's own call, which pushes the file itself and reports it.
    static func recordFailure(_ name: String, _ error: any Error, spool: String) {
        try? Array((describeError(error).message + "\n").utf8).withUnsafeBytes { b in
            let fd = open(spool + "/" + name + ".failed", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            defer { if fd >= 0 { close(fd) } }
            if fd >= 0 { try FileIO.writeAll(fd, b) }
        }
        WalPush.logger.warning(
            "pushing ahead failed; PostgreSQL will retry it",
            metadata: ["file": "\(name)", "error": "\(describeError(error).message)"])
    }
}
