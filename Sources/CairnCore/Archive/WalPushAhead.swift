import CairnBase
import CairnPostgres
import CairnStorage
import Crypto
import Foundation

/// Asynchronous archiving (`archive.async: true`): a `wal-push` that finds a backlog of `.ready` files pushes the
/// next ones too, in parallel, and leaves a record for each one durably stored and confirmed; when PostgreSQL then
/// asks for such a file, `wal-push` acknowledges it from the record without contacting the repository.
///
/// The rule that a file is acknowledged only once stored is kept: a record (`pg_wal/cairn-archive/<file>.ok`) is
/// written, synced and renamed into place only after the object was stored and confirmed, and it is honoured only
/// for the same repository location, the same size and the same SHA-256 as the file PostgreSQL hands over now.
/// A record is used once; records of files that are gone from `pg_wal` are removed.
public enum WalPushAhead {
    /// What is known of a file pushed ahead.
    struct Record: Codable, Equatable {
        var location: String
        var key: String
        var size: Int64
        var storedSize: Int64
        var sha256: String

        enum CodingKeys: String, CodingKey {
            case location, key, size, sha256
            case storedSize = "stored_size"
        }
    }

    static let spoolName = "cairn-archive"

    /// `pg_wal/cairn-archive` next to the file (`%p` is `pg_wal/<file>`).
    static func spool(for path: String) -> String {
        ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(spoolName)
    }

    /// Acknowledges `path` from a record, when one matches the file and `location`; consumes the record.
    static func acknowledge(path: String, bytes: [UInt8], location: String) -> WalPush.Result? {
        let name = (path as NSString).lastPathComponent
        let recordPath = spool(for: path) + "/" + name + ".ok"
        guard let data = FileManager.default.contents(atPath: recordPath) else { return nil }
        unlink(recordPath)
        guard let r = try? JSONDecoder().decode(Record.self, from: data), r.location == location,
              r.size == Int64(bytes.count), r.sha256 == Hex.encode(SHA256.hash(data: bytes)) else {
            WalPush.logger.warning("ignoring a stale push-ahead record", metadata: ["file": "\(name)"])
            return nil
        }
        return WalPush.Result(file: name, key: r.key, outcome: .pushedAhead, size: r.size, storedSize: r.storedSize)
    }

    /// The files waiting in `archive_status` (`.ready`) other than `path`'s, oldest first, at most `limit`, that
    /// have no record yet.
    static func ready(after path: String, limit: Int) -> [String] {
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let spool = spool(for: path)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/archive_status")) ?? [])
            .filter { $0.hasSuffix(".ready") }
            .map { String($0.dropLast(6)) }
            .filter { $0 != name && WALFileName($0) != nil && !FileManager.default.fileExists(atPath: spool + "/" + $0 + ".ok") }
        return Array(names.sorted().prefix(limit))
    }

    /// Removes records of files no longer in `pg_wal` (archived and recycled, or handled by another way).
    static func sweep(spool: String, walDirectory: String) {
        for f in (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] {
            let file = f.hasSuffix(".ok") ? String(f.dropLast(3)) : f
            if f.hasSuffix(".tmp") || !FileManager.default.fileExists(atPath: walDirectory + "/" + file) {
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
        guard fd >= 0 else { throw CoreError(.localIO, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0) }
        guard fsync(fd) == 0, rename(tmp, spool + "/" + file + ".ok") == 0 else {
            throw CoreError(.localIO, "cannot write the push-ahead record of \(file): \(String(cString: strerror(errno)))")
        }
        let dfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Pushes `names` (files in the same directory as `path`) on `pool`, each leaving a record once stored and
    /// confirmed. A failure is only logged: PostgreSQL asks for that file later and the push is done (and its
    /// error reported) then.
    static func submit(_ names: [String], beside path: String, location: String, pool: WorkerPool,
                       push: @escaping @Sendable (String) throws -> (result: WalPush.Result, sha256: String)) {
        let dir = (path as NSString).deletingLastPathComponent
        let spool = spool(for: path)
        for name in names {
            pool.submit {
                do {
                    try Interruption.check()
                    let (r, sha) = try push(dir + "/" + name)
                    try write(Record(location: location, key: r.key, size: r.size, storedSize: r.storedSize, sha256: sha),
                              file: name, spool: spool)
                } catch {
                    unlink(spool + "/" + name + ".ok")
                    WalPush.logger.warning("pushing ahead failed; PostgreSQL will retry it",
                                           metadata: ["file": "\(name)", "error": "\(describeError(error).message)"])
                }
            }
        }
    }
}
