import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

extension WalFetch {
    /// Downloads `file` from the first repository that has it and whose copy passes its checks. A repository
    /// that fails (unreachable, missing, a damaged object) is named in a warning and the next one is tried; one
    /// that failed for reasons other than its objects is tried last for the next ten minutes (a marker in the
    /// spool beside `path`), so replay does not wait on an unreachable endpoint for every segment. The file is
    /// "not found" (`wal.not-found`, the end of the archive) only when at least one repository answered that it
    /// does not have it and none had it; when none answered, the last failure is thrown (recovery stops instead of
    /// ending early).
    static func download(
        repos: RepositorySet, pipeline: Pipeline, file: WALFileName, to path: String,
        beforeRename: (_ fd: Int32, _ crc32c: UInt32) throws -> Void
    ) throws -> (size: Int64, crc32c: UInt32) {
        guard repos.isSeveral else {
            return try download(
                repo: repos.primary.repo, pipeline: pipeline, file: file, to: path, beforeRename: beforeRename)
        }
        let markers = markerDirectory(forDestination: path)
        var answered = false
        var last: Error?
        for m in healthyFirst(repos, markers: markers) {
            do {
                return try download(repo: m.repo, pipeline: pipeline, file: file, to: path, beforeRename: beforeRename)
            } catch let e as CairnError where e.code == .walNotFound {
                answered = true
            } catch  where RepositorySet.isRepositoryFailure(error) {
                logger.warning(
                    "repository \(m.name) could not serve \(file); trying the next repository",
                    metadata: ["error": "\(describeError(error).message)"])
                if let e = error as? CairnError, ![.repoObjectMissing, .dataCorrupt, .repoCorrupt].contains(e.code) {
                    markDown(m.name, markers: markers)
                }
                last = error
            }
        }
        if answered { throw CairnError(.walNotFound, "\(file) is in none of the repositories") }
        throw last ?? CairnError(.walNotFound, "\(file) is in none of the repositories")
    }

    /// Where the down markers live: the prefetch spool (`pg_wal/cairn-prefetch`), for a segment served to
    /// PostgreSQL (`pg_wal/RECOVERYXLOG`) and for one prefetched into the spool alike.
    static func markerDirectory(forDestination path: String) -> String {
        let dir = (path as NSString).deletingLastPathComponent
        return (dir as NSString).lastPathComponent == spoolName ? dir : spoolDirectory(forDestination: path)
    }

    /// The members in order, those marked down in the last ten minutes last.
    static func healthyFirst(_ repos: RepositorySet, markers: String) -> [RepositorySet.Member] {
        let now = Date().timeIntervalSince1970
        func down(_ m: RepositorySet.Member) -> Bool {
            var st = stat()
            return stat(markers + "/down-" + m.name, &st) == 0 && now - Double(st.st_mtim.tv_sec) < 600
        }
        return repos.members.filter { !down($0) } + repos.members.filter(down)
    }

    /// Remembers that repository `name` failed (a marker file whose modification time says when).
    static func markDown(_ name: String, markers: String) {
        mkdir(markers, 0o700)
        let marker = markers + "/down-" + name
        _ = FileManager.default.createFile(atPath: marker, contents: nil)
        utimes(marker, nil)
    }
}
