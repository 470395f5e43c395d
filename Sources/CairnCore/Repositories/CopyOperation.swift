import CairnBase
import CairnStorage
import Crypto
import Foundation
import Synchronization

/// `cairn copy`: fills one repository from another without reading PostgreSQL — the WAL archive, the timeline
/// records, and every committed backup the target lacks (or only those named), each committed in the target by
/// its own manifest, written after its objects were copied and checked against the source's manifest.
///
/// Objects are read through the source's driver (decrypted with its keys) and written through the target's
/// (encrypted with its own), so two repositories need not share a keyring. A target without `cairn.json` is
/// initialised for the source's cluster first (it must be empty, as for `cairn init`). An interrupted copy leaves
/// objects without a manifest, which nothing takes for a backup; the next copy writes them again.
public enum CopyOperation {
    public struct Options: Sendable {
        /// Copy only these backups (nil: every committed backup the target lacks).
        public var backups: [String]?
        /// Say what would be copied, write nothing.
        public var dryRun: Bool
        /// Objects copied at once.
        public var parallelism: Int

        public init(backups: [String]? = nil, dryRun: Bool = false, parallelism: Int = 4) {
            self.backups = backups
            self.dryRun = dryRun
            self.parallelism = parallelism
        }
    }

    public struct Result: Sendable, Codable {
        public var from: String
        public var to: String
        /// The target had no cairn.json and was initialised for the source's cluster.
        public var initialized: Bool
        public var backups: [String]
        public var walFiles: Int
        public var records: Int
        public var bytes: Int64
        public var dryRun: Bool

        enum CodingKeys: String, CodingKey {
            case from, to, initialized, backups, records, bytes
            case walFiles = "wal_files"
            case dryRun = "dry_run"
        }
    }

    /// Copies what `to` lacks from `from`.
    public static func run(from: RepositorySet.Member, to: RepositorySet.Member, options: Options) throws -> Result {
        let info = try RepositoryInfo.require(from: from.repo)
        let initialized = try adoptIdentity(info, into: to, dryRun: options.dryRun)
        var result = Result(
            from: from.name, to: to.name, initialized: initialized, backups: [], walFiles: 0, records: 0, bytes: 0,
            dryRun: options.dryRun)
        let copier = ObjectCopier(from: from.repo, to: to.repo, parallelism: options.parallelism)
        let wal = try missing(prefix: Layout.walPrefix, from: from.repo, to: to.repo)
        let records = try missing(prefix: Layout.timelinesPrefix, from: from.repo, to: to.repo)
        let backups = try missingBackups(from: from.repo, to: to.repo, only: options.backups)
        result.walFiles = wal.count
        result.records = records.count
        result.backups = backups.map(\.id)
        guard !options.dryRun else { return result }
        try copier.copy(wal + records)
        for b in backups { try copyBackup(b, copier: copier, from: from.repo) }
        result.bytes = copier.bytes
        return result
    }

    /// Makes sure `to` belongs to the source's cluster: initialises it when it has no `cairn.json` (true), refuses
    /// a repository of another cluster.
    static func adoptIdentity(_ info: RepositoryInfo, into to: RepositorySet.Member, dryRun: Bool) throws -> Bool {
        if let existing = try RepositoryInfo.load(from: to.repo) {
            guard existing.systemIdentifier == info.systemIdentifier, existing.pgMajor == info.pgMajor else {
                throw CairnError(
                    .repoForeign,
                    "repository \(to.name) (\(to.repo.location)) belongs to cluster \(existing.systemIdentifier) (PostgreSQL \(existing.pgMajor)), not \(info.systemIdentifier) (PostgreSQL \(info.pgMajor)); nothing was copied",
                    hint: "point repositories.\(to.name) at an empty location or at this cluster's repository")
            }
            try existing.checkEncryption(to.repo)
            return false
        }
        guard !dryRun else { return true }
        let others = try to.repo.list(prefix: "").filter {
            !$0.key.hasPrefix(Layout.probePrefix) && !Layout.identityKeys.contains($0.key)
        }
        if let o = others.first {
            throw CairnError(
                .repoObjectExists,
                "repository \(to.name) (\(to.repo.location)) has objects (e.g. \(o.key)) but no cairn.json; nothing was copied",
                hint: "choose an empty location for a new repository")
        }
        try RepositoryProbe.proveCreateOnly(repo: to.repo)
        let encrypted = to.repo as? EncryptedRepository
        _ = try encrypted?.createKeyringIfMissing(now: Date())
        var own = info
        own.encryption = encrypted == nil ? nil : Keyring.cipher
        let bytes = try SealedDocument.seal(own)
        try to.repo.put(RepositoryInfo.key, bytes, options: .createOnly)
        try to.repo.put(RepositoryInfo.copyKey, bytes, options: .overwrite)
        return true
    }

    /// Keys under `prefix` in `from` that `to` does not have.
    static func missing(prefix: String, from: any Repository, to: any Repository) throws -> [String] {
        let have = Set(try to.list(prefix: prefix).map(\.key))
        return try from.list(prefix: prefix).map(\.key).filter { !have.contains($0) }
    }

    /// The committed backups of `from` that `to` has not committed, oldest first: all of them, or those of `only`
    /// with the parents their chains need.
    static func missingBackups(from: any Repository, to: any Repository, only: [String]?) throws -> [BackupManifest] {
        let have = try RepositoryInfo.load(from: to) == nil ? [] : Set(try Catalog.load(from: to).backups.map(\.id))
        let source = try Catalog.load(from: from)
        let byId = Dictionary(source.backups.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var wanted = Set(only ?? source.backups.map(\.id))
        for id in wanted {
            guard var b = byId[id] else {
                throw CairnError(
                    .backupNotFound, "backup \(id) is not a committed backup in the source repository",
                    hint: "`cairn list` shows the backups")
            }
            while let parent = b.parent, let p = byId[parent] {
                wanted.insert(parent)
                b = p
            }
        }
        return source.backups.filter { wanted.contains($0.id) && !have.contains($0.id) }
            .sorted { $0.stop.time < $1.stop.time }
    }

    /// Copies one backup's objects, each checked against the manifest's digest of it, then its pin, and then its
    /// manifest: the commit in the target.
    static func copyBackup(_ manifest: BackupManifest, copier: ObjectCopier, from: any Repository) throws {
        let prefix = Layout.backupPrefix(manifest.id)
        let expected = Dictionary(
            manifest.allObjects.map { ($0.key, $0.digest.storedSHA256) }, uniquingKeysWith: { a, _ in a })
        let keys = try from.list(prefix: prefix).map(\.key).filter { $0 != Layout.manifestKey(manifest.id) }
        try copier.copy(keys, expected: expected, overwrite: true)
        try copier.copy([Layout.manifestKey(manifest.id)], overwrite: false)
    }
}

/// Copies objects between two repositories, several at once, counting bytes.
final class ObjectCopier: Sendable {
    let from: any Repository
    let to: any Repository
    let parallelism: Int
    private let copied = Mutex<Int64>(0)

    init(from: any Repository, to: any Repository, parallelism: Int) {
        self.from = from
        self.to = to
        self.parallelism = parallelism
    }

    /// Bytes copied so far.
    var bytes: Int64 { copied.withLock { $0 } }

    /// Copies `keys`; an object whose key is in `expected` must have that stored SHA-256. Create-only unless
    /// `overwrite` (an object of an earlier, interrupted copy is then replaced); a create-only copy of a key the
    /// target already has is skipped.
    func copy(_ keys: [String], expected: [String: String] = [:], overwrite: Bool = false) throws {
        guard !keys.isEmpty else { return }
        let pool = WorkerPool(threads: min(max(1, parallelism), keys.count), maxQueued: 2, name: "cairn-copy")
        for key in keys {
            guard pool.submit({ try self.copyOne(key, expected: expected[key], overwrite: overwrite) }) else { break }
        }
        try pool.wait()
    }

    private func copyOne(_ key: String, expected: String?, overwrite: Bool) throws {
        let writer = try to.makeWriter(
            key, options: overwrite ? .overwrite : PutOptions(createOnly: true, uploadThreads: 0))
        var hash = SHA256()
        do {
            try from.get(key, range: nil) { chunk in
                hash.update(bufferPointer: chunk)
                try writer.write(chunk)
            }
            let sha = Hex.encode(Array(hash.finalize()))
            if let expected, !expected.isEmpty, expected != sha {
                throw CairnError(
                    .dataCorrupt,
                    "\(key) in \(from.location) does not match its manifest (SHA-256 \(sha), expected \(expected)); it was not copied",
                    hint:
                        "run `cairn verify` on the source repository; copy from another repository if one has a good copy"
                )
            }
            let info = try writer.finish()
            copied.withLock { $0 += info.size }
        } catch let e as CairnError where e.code == .repoObjectExists && !overwrite {
            writer.abort()
        } catch {
            writer.abort()
            throw error
        }
    }
}
