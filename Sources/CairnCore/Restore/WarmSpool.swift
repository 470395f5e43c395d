import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

extension RestoreOperation {
    /// Fetches the WAL that recovery needs to reach consistency — the backup's own WAL, from its start segment to its
    /// stop segment (at most `limit` segments) — into the prefetch spool of the restored data directory
    /// (`pg_wal/cairn-prefetch`), in parallel, before PostgreSQL starts. `wal-fetch` then serves those segments
    /// from the spool by a rename after their check, so the first minutes of recovery wait on no process start and
    /// no download. Best effort: a segment not fetched here is fetched when recovery asks for it. Returns how many
    /// were fetched.
    @discardableResult
    public static func warmWALSpool(
        repo: any Repository, pipeline: Pipeline, catalog: Catalog, plan: RecoveryPlan, targetDirectory: String,
        parallelism: Int, limit: Int
    ) -> Int {
        let size = catalog.info.walSegmentSize
        guard limit > 0, let backup = catalog.backups.first(where: { $0.id == plan.backupId }),
            let first = WALSegment(name: backup.start.wal, segmentSize: size),
            let last = WALSegment(name: backup.stop.wal, segmentSize: size), first.timeline == last.timeline,
            last.number >= first.number
        else { return 0 }
        let count = min(Int(last.number - first.number) + 1, limit)
        do {
            return try WalFetch.prefetch(
                repo: repo, pipeline: pipeline, info: catalog.info, first: first, count: count,
                spool: targetDirectory + "/pg_wal/" + WalFetch.spoolName, parallelism: parallelism)
        } catch {
            Logger(label: "cairn.restore").notice(
                "the backup's WAL was not fetched ahead; recovery fetches it",
                metadata: ["error": "\(describeError(error).message)"])
            return 0
        }
    }
}
