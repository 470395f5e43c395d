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
/// An interrupted expire therefore leaves only uncommitted garbage, which the next run removes. Deletes that
/// fail are collected and reported together at the end.
public enum ExpireOperation {
    public struct Result: Sendable, Codable {
        public var plan: ExpirePlan
        public var deletedObjects: Int
        public var deletedBytes: Int64
        public var failures: [String]

        enum CodingKeys: String, CodingKey {
            case plan, failures
            case deletedObjects = "deleted_objects"
            case deletedBytes = "deleted_bytes"
        }
    }

    static let logger = Logger(label: "cairn.expire")

    public static func run(
        repo: any Repository, catalog: Catalog, plan: ExpirePlan, policy: RetentionPolicy
    ) throws -> Result {
        var sizes: [String: Int64] = [:]
        for (_, objs) in catalog.backupObjects { for o in objs { sizes[o.key] = o.size } }
        for (_, segs) in catalog.wal.segments { for (_, e) in segs { sizes[e.key] = e.storedSize } }
        for e in catalog.wal.others { sizes[e.key] = e.storedSize }

        var deleted = 0
        var bytes: Int64 = 0
        var failures: [String] = []
        func delete(_ keys: [String], what: String) {
            guard !keys.isEmpty else { return }
            do {
                try repo.delete(keys)
                deleted += keys.count
                bytes += keys.reduce(0) { $0 + (sizes[$1] ?? 0) }
            } catch {
                failures.append("\(what): \(describeError(error).message)")
            }
        }
        for d in plan.decisions where d.kind == "backup" && d.action == .delete {
            // Uncommit first; only then the data.
            let manifest = Layout.manifestKey(d.subject)
            do {
                try repo.delete([manifest])
                deleted += 1
            } catch {
                failures.append("backup \(d.subject): \(describeError(error).message)")
                continue
            }
            delete(d.keys.filter { $0 != manifest }, what: "backup \(d.subject)")
            logger.info("expired backup", metadata: ["id": "\(d.subject)", "reason": "\(d.reason)"])
        }
        let walKeys = plan.decisions.filter { $0.kind == "wal" && $0.action == .delete }.flatMap(\.keys)
        for start in stride(from: 0, to: walKeys.count, by: 1000) {
            delete(Array(walKeys[start..<min(start + 1000, walKeys.count)]), what: "WAL")
        }
        for d in plan.decisions where (d.kind == "orphan" || d.kind == "record") && d.action == .delete {
            delete(d.keys, what: "uncommitted backup \(d.subject)")
        }
        if let local = repo as? LocalRepository {
            deleted += (try? local.removeStaleTemporaries(olderThan: policy.orphanSafetyAge, now: plan.now)) ?? 0
        }
        if let s3 = repo as? S3Repository {
            do {
                deleted += try s3.abortStaleUploads(olderThan: policy.orphanSafetyAge, now: plan.now)
            } catch {
                failures.append("incomplete multipart uploads: \(describeError(error).message)")
            }
        }
        if !failures.isEmpty {
            throw CairnError(
                .repoIO,
                "expire finished with \(failures.count) failure(s): " + failures.prefix(5).joined(separator: "; "),
                hint: "what failed is still in the repository and will be retried by the next `cairn expire`")
        }
        return Result(plan: plan, deletedObjects: deleted, deletedBytes: bytes, failures: failures)
    }
}
