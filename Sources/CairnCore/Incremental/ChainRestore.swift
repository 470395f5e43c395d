import CairnBase
import CairnStorage
import Foundation

extension RestoreOperation {
    /// Lays out an incremental chain in one pass: the newest backup first (its directories, links, whole files and
    /// changed blocks), then each older one adding only the blocks and files no newer backup held, and every file
    /// cut to its size at the newest backup. Each block is written once; nothing is staged.
    ///
    /// A delta restore (`delta`, also for a chain of one full backup) compares each block with the file on disk
    /// and writes only those that differ, then removes what the backup does not have (``sweep``); it returns what
    /// it did.
    @discardableResult
    static func layOutChain(
        _ chain: [BackupManifest], root: String, roots: [String: String],
        relink: @escaping @Sendable (String, String) -> String, repo: any Repository, pipeline: Pipeline,
        parallelism: Int, totals: Totals, delta: DeltaTally? = nil,
        onBytes: @escaping @Sendable (Int64) -> Void
    ) throws -> DeltaSummary? {
        let newest = chain.last!
        let files = ChainFiles(
            final: try fileList(newest, repo: repo, pipeline: pipeline),
            archives: newest.archives.map { ($0.name, $0.tablespaceOid) })
        for backup in chain.reversed() {
            try extract(
                backup, roots: roots, relink: relink, chain: (files, backup.id == newest.id), repo: repo,
                pipeline: pipeline,
                parallelism: parallelism, totals: totals, delta: delta, onBytes: onBytes)
        }
        try files.finish(resized: { delta?.resized($0) }) { root + "/" + $0 }
        guard let delta else { return nil }
        try sweep(newest.archives.map { ($0.name, $0.tablespaceOid) }, final: files.final, roots: roots, tally: delta)
        return delta.summary(files: files.final.files.count)
    }

    /// The complete file list of a physical backup (its PostgreSQL manifest), digest checked.
    static func fileList(_ backup: BackupManifest, repo: any Repository, pipeline: Pipeline) throws -> PGManifestFiles {
        guard let m = backup.pgManifest else {
            throw CairnError(
                .dataCorrupt, "backup \(backup.id) has no backup_manifest, so its chain cannot be put together")
        }
        var bytes: [UInt8] = []
        try pipeline.load(repo, key: m.key, expected: m.digest) { bytes.append(contentsOf: $0) }
        return try PGManifestFiles.parse(bytes)
    }
}
