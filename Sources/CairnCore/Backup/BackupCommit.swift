import CairnBase
import CairnStorage
import Foundation
import Logging

/// The commit of a backup (physical or logical): `manifest.json`, written create-only, is the commit point.
///
/// Two rules from issue #25 live here. Before committing, every object the manifest references must still be in
/// the repository with its stored size (a backup that waited longer than `orphan_safety_age` may have lost its
/// uncommitted objects to a concurrent `cairn expire`). After a failed manifest write, the backup's objects are
/// never deleted: a write whose reply was lost may have committed it, or may still land.
enum BackupCommit {
    static let logger = Logger(label: "cairn.backup")

    /// Checks the objects, then writes `manifest.json` for `manifest`. On any failure before the manifest write,
    /// removes `written` (the objects this run stored); after a failed manifest write, keeps them.
    /// - Throws: `backup.failed` (objects missing, a different manifest exists, or the write failed and nothing was
    ///   committed); `backup.commit-unknown` when the manifest may or may not exist (nothing is deleted then).
    static func commit(
        _ manifest: BackupManifest, objects: [BackupManifest.Object], repo: any Repository,
        written: [String]
    ) throws {
        let id = manifest.id
        let bytes: [UInt8]
        do {
            try checkStored(objects, repo: repo, id: id)
            bytes = try SealedDocument.seal(manifest)
            try Interruption.check()
        } catch {
            BackupOperation.cleanup(repo: repo, keys: written)
            throw BackupOperation.wrap(error, id: id)
        }
        do {
            try repo.put(Layout.manifestKey(id), bytes, options: .createOnly)
        } catch {
            try resolveFailedWrite(error, bytes: bytes, id: id, repo: repo, written: written)
        }
    }

    /// Fails unless every object in `objects` is listed under the backup's prefix with its stored size.
    static func checkStored(_ objects: [BackupManifest.Object], repo: any Repository, id: String) throws {
        let listed = Dictionary(
            try repo.list(prefix: Layout.backupPrefix(id)).map { ($0.key, $0.size) }, uniquingKeysWith: { a, _ in a })
        let bad = objects.filter { listed[$0.key] != $0.digest.storedSize }
        guard bad.isEmpty else {
            let names = bad.prefix(5).map { o in
                listed[o.key].map { "\(o.key) (\($0) bytes, expected \(o.digest.storedSize))" } ?? "\(o.key) (missing)"
            }
            throw CairnError(
                .backupFailed,
                "\(bad.count) of the backup's \(objects.count) objects are gone or changed before the commit: \(names.joined(separator: ", "))\(bad.count > 5 ? ", …" : "")",
                hint: "a `cairn expire` removes uncommitted objects older than retention's orphan_safety_age; "
                    + "raise orphan_safety_age above the longest backup (including its wait for WAL) and take the backup again"
            )
        }
    }

    /// The manifest write failed: finds out whether it landed anyway (a lost reply) before deciding what to delete.
    static func resolveFailedWrite(
        _ error: any Error, bytes: [UInt8], id: String, repo: any Repository, written: [String]
    ) throws {
        let key = Layout.manifestKey(id)
        let stored: [UInt8]?
        do {
            stored = try repo.getBytesIfExists(key)
        } catch {
            let (_, message, _) = describeError(error)
            throw CairnError(
                .backupCommitUnknown,
                "backup \(id) may or may not be committed: writing \(key) failed and reading it back failed too (\(message)); its data was kept",
                hint:
                    "`cairn list` shows whether backup \(id) is committed; if it is not, `cairn expire` removes its data after orphan_safety_age",
                cause: error)
        }
        switch stored {
        case bytes?:
            let (_, message, _) = describeError(error)
            logger.warning(
                "the reply to the manifest write was lost, but the manifest is stored: the backup is committed",
                metadata: ["id": "\(id)", "error": "\(message)"])
        case .some:
            throw CairnError(
                .backupFailed,
                "backup \(id) was not committed: \(key) already exists with other content; its data was kept",
                hint: "another process wrote this backup's manifest; run `cairn list` and `cairn verify`")
        case nil:
            // Not there now, but a write whose reply was lost may still land (a proxy answered before the store
            // did): deleting the data could leave a committed manifest without it. The objects stay as an
            // uncommitted backup, which `cairn expire` removes after orphan_safety_age.
            let (code, message, hint) = describeError(error)
            throw CairnError(
                code,
                "backup \(id) failed and was not committed: writing \(key) failed (\(message)); its data was left for `cairn expire`",
                hint: hint, cause: error)
        }
    }
}
