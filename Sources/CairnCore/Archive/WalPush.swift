import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn wal-push %p` for `archive_command`: compress, store create-only, confirm, and only then succeed.
public enum WalPush {
    public enum Outcome: String, Sendable, Codable {
        /// Stored now.
        case stored
        /// Already in the repository with the same content: nothing to do.
        case alreadyStored = "already-stored"
        /// Stored and confirmed earlier by a push ahead (asynchronous archiving); acknowledged from its record.
        case pushedAhead = "pushed-ahead"
    }

    public struct Result: Sendable, Codable {
        public var file: String
        public var key: String
        public var outcome: Outcome
        public var size: Int64
        public var storedSize: Int64
        /// With several repositories: those that do not hold the file yet (it was acknowledged without them
        /// because the backlog reached `archive.max_backlog`); nil when every repository holds it.
        public var behind: [String]? = nil

        enum CodingKeys: String, CodingKey {
            case file, key, outcome, size, behind
            case storedSize = "stored_size"
        }
    }

    static let logger = Logger(label: "cairn.wal-push")

    /// Pushes one file to one repository (see ``run(repos:pipeline:path:async:maxBacklog:startWorker:waitLimit:)``).
    public static func run(
        repo: any Repository, pipeline: Pipeline, path: String, async: Bool = false,
        startWorker: () -> Void = {}, waitLimit: Double = 60
    ) throws -> Result {
        try run(
            repos: .single(repo), pipeline: pipeline, path: path, async: async,
            startWorker: startWorker, waitLimit: waitLimit)
    }

    /// Pushes one file to every repository. `path` is as PostgreSQL passes `%p` (relative to the data directory,
    /// which is the archiver's working directory). With `async` (see ``WalPushAhead``) the file is acknowledged
    /// from the record of the push-ahead worker when it has one; when other files wait too, `startWorker` is
    /// called (unless a worker runs) and the call waits for the worker's record of this file, up to `waitLimit`
    /// seconds, before pushing it itself. With several repositories, see ``push(file:bytes:repos:pipeline:walDirectory:maxBacklog:)``
    /// for when a file stored in only some of them is acknowledged.
    public static func run(
        repos: RepositorySet, pipeline: Pipeline, path: String, async: Bool = false, maxBacklog: Int64 = 1 << 30,
        startWorker: () -> Void = {}, waitLimit: Double = 60
    ) throws -> Result {
        if async, let r = pushedAhead(path: path, store: repos.identity, startWorker: startWorker, waitLimit: waitLimit)
        {
            return r
        }
        let (file, bytes) = try read(path)
        return try push(
            file: file, bytes: bytes, repos: repos, pipeline: pipeline,
            walDirectory: (path as NSString).deletingLastPathComponent, maxBacklog: maxBacklog)
    }

    /// The acknowledgement from the push-ahead worker's record of `path`, waiting for the worker when files wait
    /// (starting it if none runs); nil when the caller must push the file itself.
    static func pushedAhead(path: String, store: String, startWorker: () -> Void, waitLimit: Double) -> Result? {
        WalPushAhead.sweep(walDirectory: (path as NSString).deletingLastPathComponent)
        if let r = WalPushAhead.acknowledge(path: path, store: store) {
            logger.info("archived by the push-ahead worker", metadata: ["file": "\(r.file)"])
            return r
        }
        let spool = WalPushAhead.spool(for: path)
        var started: Date?
        if !SpoolLock.held(spool) && WalPushAhead.backlog(beside: path) {
            mkdir(spool, 0o700)
            startWorker()
            started = Date()
        }
        if started != nil || SpoolLock.held(spool),
            let r = WalPushAhead.waitForRecord(path: path, store: store, started: started, timeout: waitLimit)
        {
            logger.info("archived by the push-ahead worker", metadata: ["file": "\(r.file)"])
            return r
        }
        return nil
    }

    /// Reads a file PostgreSQL asks to archive.
    static func read(_ path: String) throws -> (WALFileName, [UInt8]) {
        var bytes: [UInt8] = []
        return (try read(path, into: &bytes), bytes)
    }

    /// Reads a file PostgreSQL asks to archive into `bytes` (reusing its memory when it has the right size).
    static func read(_ path: String, into bytes: inout [UInt8]) throws -> WALFileName {
        let name = (path as NSString).lastPathComponent
        guard let file = WALFileName(name) else {
            throw CairnError(
                .walInvalidName, "\(name) is not a WAL segment, history or backup-history file name",
                hint: "archive_command must pass %p: archive_command = 'cairn wal-push %p'")
        }
        guard FileIO.readAll(path, into: &bytes) else {
            throw CairnError(
                .localIO, "cannot read \(path): \(String(cString: strerror(errno)))",
                hint: "archive_command runs in the data directory; pass %p unchanged")
        }
        return file
    }

    /// Stores one file create-only and confirms it.
    static func push(
        file: WALFileName, bytes: [UInt8], repo: any Repository, pipeline: Pipeline,
        info: RepositoryInfo
    ) throws -> Result {
        let name = file.fileName
        try checkIdentity(file: file, bytes: bytes, info: info, repo: repo)
        let key = Layout.walKey(file)
        do {
            // No content SHA-256 (format 3): the stored bytes' digest and zstd's checksum prove the content, and a
            // conflict is found by comparing the content itself (below).
            let digest = try pipeline.store(repo, key: key, bytes: bytes, options: .createOnly, contentDigest: false)
            try confirm(repo: repo, pipeline: pipeline, key: key, digest: digest)
            logger.info("archived", metadata: ["file": "\(name)", "stored_bytes": "\(digest.storedSize)"])
            return Result(file: name, key: key, outcome: .stored, size: digest.size, storedSize: digest.storedSize)
        } catch let e as CairnError where e.code == .repoObjectExists {
            // Already there (an earlier push whose acknowledgement was lost): fine if identical, never overwrite.
            let existing: ObjectDigest
            var differsAt: Int?
            do {
                var offset = 0
                existing = try pipeline.load(repo, key: key) { chunk in
                    if differsAt == nil {
                        let end = offset + chunk.count
                        if end > bytes.count
                            || !bytes.withUnsafeBytes({
                                memcmp($0.baseAddress! + offset, chunk.baseAddress!, chunk.count) == 0
                            })
                        {
                            differsAt = offset
                        }
                        offset = end
                    }
                }
            } catch let c as CairnError where c.code == .dataCorrupt {
                throw CairnError(
                    .walConflict,
                    "\(name) is already in the repository but that copy is damaged (\(c.message)); it was not overwritten",
                    hint: "see runbooks/wal-archiving.md: move the damaged object aside, then let the archiver retry")
            }
            if differsAt == nil, existing.size != Int64(bytes.count) {
                differsAt = Int(min(existing.size, Int64(bytes.count)))
            }
            if let differsAt {
                throw CairnError(
                    .walConflict,
                    "\(name) is already in the repository with different content (the copies differ from byte \(differsAt) on); nothing was overwritten",
                    hint:
                        "two clusters may be archiving into one repository, or this cluster was restored without a new timeline; see runbooks/wal-archiving.md"
                )
            }
            logger.info("already archived with the same content", metadata: ["file": "\(name)"])
            return Result(
                file: name, key: key, outcome: .alreadyStored, size: existing.size, storedSize: existing.storedSize)
        }
    }

    /// Refuses a segment of another cluster or another major version.
    static func checkIdentity(file: WALFileName, bytes: [UInt8], info: RepositoryInfo, repo: any Repository) throws {
        switch file {
        case .segment, .partial:
            guard bytes.count == Int(info.walSegmentSize) else {
                throw CairnError(
                    .walInvalidName,
                    "\(file) has \(bytes.count) bytes, not the repository's segment size \(info.walSegmentSize)")
            }
            guard let id = bytes.withUnsafeBytes({ WALHeader.identity(ofSegment: $0) }) else {
                throw CairnError(.dataCorrupt, "\(file) does not start with a WAL page header")
            }
            if String(id.systemIdentifier) != info.systemIdentifier {
                throw CairnError(
                    .repoForeign,
                    "\(file) belongs to cluster \(id.systemIdentifier), but repository \(repo.location) belongs to cluster \(info.systemIdentifier); refusing to push",
                    hint: "give each cluster its own repository (path or prefix) and run `cairn init` for it")
            }
            if let magic = WALHeader.pageMagic[info.pgMajor], magic != id.magic {
                throw CairnError(
                    .pgVersion,
                    "\(file) was written by another PostgreSQL major version than the repository's (\(info.pgMajor))",
                    hint: "after a major upgrade, start a new repository")
            }
        case .history, .backupHistory:
            if let sysid = WALHeader.systemIdentifier(pgControl: "global/pg_control"),
                String(sysid) != info.systemIdentifier
            {
                throw CairnError(
                    .repoForeign,
                    "this cluster (\(sysid)) is not the one repository \(repo.location) belongs to (\(info.systemIdentifier)); refusing to push",
                    hint: "give each cluster its own repository (path or prefix) and run `cairn init` for it")
            }
        }
    }

    /// Confirms the stored object. A store that vouches for its writes (S3 checked the body against its
    /// Content-MD5 and signed SHA-256, and answered with the MD5 as ETag) has confirmed it already; anywhere else
    /// (local disks) the object is read back and checked against its size and digests.
    static func confirm(repo: any Repository, pipeline: Pipeline, key: String, digest: ObjectDigest) throws {
        guard !repo.capabilities.contains(.verifiedWrites) else { return }
        _ = try pipeline.load(repo, key: key, expected: digest) { _ in }
    }
}
