import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Synchronization

extension RepositorySet {
    /// What a push-ahead record names as its store: the identities of every repository (one repository: its own
    /// identity, as before several were possible).
    public var identity: String { members.map(\.repo.identity).joined(separator: " + ") }
}

extension WalPush {
    /// Stores one file in every repository, in parallel, each create-only and confirmed.
    ///
    /// The file is acknowledged (this returns) when every repository holds it. When some hold it and another
    /// failed (unreachable, uninitialized, out of space), the push fails with `repo.behind` so that PostgreSQL
    /// keeps the file and retries — until the WAL waiting to be archived (`.ready` files in `walDirectory`) exceeds
    /// `maxBacklog` bytes: then the file is acknowledged without the failed repositories, named in the result's
    /// `behind` and in a warning, and `cairn copy` (or the daemon) catches them up from the others. A conflict
    /// (different content under the name) or a file of another cluster fails at once, whatever the others say.
    static func push(
        file: WALFileName, bytes: [UInt8], repos: RepositorySet, pipeline: Pipeline, walDirectory: String,
        maxBacklog: Int64
    ) throws -> Result {
        let outcomes = pushEach(file: file, bytes: bytes, repos: repos, pipeline: pipeline)
        var stored: Result?
        var failed: [(name: String, error: Error)] = []
        for (m, outcome) in zip(repos.members, outcomes) {
            switch outcome {
            case .success(let r): stored = stored ?? r
            case .failure(let e) where !RepositorySet.isRepositoryFailure(e): throw e
            case .failure(let e): failed.append((m.name, e))
            }
        }
        guard var result = stored else { throw failed[0].error }
        guard !failed.isEmpty else { return result }
        let names = failed.map(\.name)
        let reasons = failed.map { "\($0.name): \(describeError($0.error).message)" }.joined(separator: "; ")
        // A history file is small: count what waits in segments of the usual size then.
        let segmentSize = if case .segment = file { Int64(bytes.count) } else { Int64(16 << 20) }
        let waiting = backlogBytes(walDirectory: walDirectory, segmentSize: segmentSize)
        guard waiting > maxBacklog else {
            throw CairnError(
                .repoBehind,
                "\(file) is stored in \(repos.members.count - failed.count) of \(repos.members.count) repositories, not yet in \(names.joined(separator: ", ")) (\(reasons)); PostgreSQL keeps it and retries",
                hint:
                    "archiving waits for \(names.joined(separator: ", ")) until \(Units.formatBytes(maxBacklog)) of WAL waits (archive.max_backlog; \(Units.formatBytes(waiting)) now), then goes on without it; runbooks/wal-archiving.md"
            )
        }
        logger.warning(
            "acknowledged without repositories that failed: the WAL waiting reached archive.max_backlog",
            metadata: [
                "file": "\(file)", "behind": "\(names.joined(separator: ","))", "error": "\(reasons)",
                "catch_up": "cairn copy --to \(names[0])"
            ])
        result.behind = names
        return result
    }

    /// Pushes to each repository at once (one thread per repository beyond the first).
    static func pushEach(
        file: WALFileName, bytes: [UInt8], repos: RepositorySet, pipeline: Pipeline
    ) -> [Swift.Result<Result, Error>] {
        @Sendable func one(_ m: RepositorySet.Member) -> Swift.Result<Result, Error> {
            Swift.Result {
                let info = try RepositoryInfo.require(from: m.repo)
                return try push(file: file, bytes: bytes, repo: m.repo, pipeline: pipeline, info: info)
            }
        }
        guard repos.isSeveral else { return [one(repos.primary)] }
        let slots = Mutex([Int: Swift.Result<Result, Error>]())
        DispatchQueue.concurrentPerform(iterations: repos.members.count) { i in
            let r = one(repos.members[i])
            slots.withLock { $0[i] = r }
        }
        return slots.withLock { s in repos.members.indices.map { s[$0]! } }
    }

    /// Bytes of WAL waiting to be archived: the `.ready` files of `archive_status` times the segment size.
    static func backlogBytes(walDirectory dir: String, segmentSize: Int64) -> Int64 {
        let ready =
            ((try? FileManager.default.contentsOfDirectory(atPath: (dir.isEmpty ? "." : dir) + "/archive_status"))
            ?? []).filter { $0.hasSuffix(".ready") }.count
        return Int64(ready) * segmentSize
    }
}
