import CairnBase
import CairnStorage
import Foundation
import Logging

/// `cairn expire`: executes an expire plan in a crash-safe order.
///
/// 1. Each expired backup is uncommitted first (its `manifest.json` deleted), then its other objects go.
/// 2. Expired WAL goes, in batches.
/// 3. Uncommitted objects older than the safety age go, and the driver's own leftovers (temporary files of
///    interrupted local writes).
/// With S3 Object Lock the driver deletes every version of a key; an object still locked is kept as it was and
/// reported (not a failure): a backup whose manifest is locked stays committed and whole, and the next run deletes
/// it once the lock has passed.
/// An interrupted expire therefore leaves only uncommitted garbage, which the next run removes. Deletes that
/// fail are collected and reported together at the end.
public enum ExpireOperation {
    public struct Result: Sendable, Codable {
        public var plan: ExpirePlan
        public var deletedObjects: Int
        public var deletedBytes: Int64
        public var failures: [String]
        /// Objects the plan would delete that S3 Object Lock keeps until their retain-until date (they stay as they
        /// were, and a later `expire` deletes them), and what each refusal said.
        public var lockedObjects: Int = 0
        public var locked: [String] = []

        enum CodingKeys: String, CodingKey {
            case plan, failures, locked
            case deletedObjects = "deleted_objects"
            case deletedBytes = "deleted_bytes"
            case lockedObjects = "locked_objects"
        }
    }

    static let logger = Logger(label: "cairn.expire")

    public static func run(
        repo: any Repository, catalog: Catalog, plan: ExpirePlan, policy: RetentionPolicy
    ) throws -> Result {
        var run = Deleter(repo: repo, catalog: catalog)
        for d in plan.decisions where d.kind == "backup" && d.action == .delete {
            // Uncommit first; only then the data. A manifest still locked keeps the whole backup, untouched.
            let manifest = Layout.manifestKey(d.subject)
            guard run.delete([manifest], what: "backup \(d.subject)") else { continue }
            run.delete(d.keys.filter { $0 != manifest }, what: "backup \(d.subject)")
            logger.info("expired backup", metadata: ["id": "\(d.subject)", "reason": "\(d.reason)"])
        }
        let walKeys = plan.decisions.filter { $0.kind == "wal" && $0.action == .delete }.flatMap(\.keys)
        for start in stride(from: 0, to: walKeys.count, by: 1000) {
            run.delete(Array(walKeys[start..<min(start + 1000, walKeys.count)]), what: "WAL")
        }
        for d in plan.decisions where (d.kind == "orphan" || d.kind == "record") && d.action == .delete {
            run.delete(d.keys, what: "uncommitted backup \(d.subject)")
        }
        run.removeDriverLeftovers(olderThan: policy.orphanSafetyAge, now: plan.now)
        if !run.failures.isEmpty {
            throw CairnError(
                .repoIO,
                "expire finished with \(run.failures.count) failure(s): "
                    + run.failures.prefix(5).joined(separator: "; "),
                hint: "what failed is still in the repository and will be retried by the next `cairn expire`")
        }
        return Result(
            plan: plan, deletedObjects: run.deleted, deletedBytes: run.bytes, failures: [],
            lockedObjects: run.lockedObjects, locked: run.locked)
    }

    /// Deletes and keeps the score: what went, what failed, what Object Lock kept.
    struct Deleter {
        let repo: any Repository
        var sizes: [String: Int64] = [:]
        var deleted = 0
        var bytes: Int64 = 0
        var failures: [String] = []
        var lockedObjects = 0
        var locked: [String] = []

        init(repo: any Repository, catalog: Catalog) {
            self.repo = repo
            for (_, objs) in catalog.backupObjects { for o in objs { sizes[o.key] = o.size } }
            for (_, segs) in catalog.wal.segments { for (_, e) in segs { sizes[e.key] = e.storedSize } }
            for e in catalog.wal.others { sizes[e.key] = e.storedSize }
        }

        /// Deletes `keys`; true when all of them went. Objects under Object Lock are counted and reported, not
        /// failures: they stay readable and the next `expire` deletes them once their lock has passed.
        @discardableResult
        mutating func delete(_ keys: [String], what: String) -> Bool {
            guard !keys.isEmpty else { return true }
            do {
                try repo.delete(keys)
                count(keys)
                return true
            } catch let e as CairnError where e.code == .repoObjectLocked {
                let kept = (e.cause as? LockedObjects)?.keys ?? keys
                count(keys.filter { !Set(kept).contains($0) })
                lockedObjects += kept.count
                locked.append("\(what): \(e.message)")
                ExpireOperation.logger.info(
                    "kept under Object Lock", metadata: ["what": "\(what)", "objects": "\(kept.count)"])
            } catch {
                failures.append("\(what): \(describeError(error).message)")
            }
            return false
        }

        private mutating func count(_ keys: [String]) {
            deleted += keys.count
            bytes += keys.reduce(0) { $0 + (sizes[$1] ?? 0) }
        }

        /// The driver's own leftovers: temporary files of interrupted local writes, stale multipart uploads.
        mutating func removeDriverLeftovers(olderThan age: Double, now: Date) {
            if let local = repo as? LocalRepository {
                deleted += (try? local.removeStaleTemporaries(olderThan: age, now: now)) ?? 0
            }
            if let s3 = repo as? S3Repository {
                do {
                    deleted += try s3.abortStaleUploads(olderThan: age, now: now)
                } catch {
                    failures.append("incomplete multipart uploads: \(describeError(error).message)")
                }
            }
        }
    }
}
