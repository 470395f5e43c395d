import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// `cairn init`: creates `cairn.json` (and its `.copy` twin) for a cluster, or confirms an existing one. On an
/// ``EncryptedRepository`` it first creates the keyring (or reuses one the master key opens).
public enum InitOperation {
    /// What `init` did.
    public enum Outcome: String, Sendable, Codable {
        /// A new repository was created.
        case created
        /// The repository already belonged to this cluster; nothing changed.
        case existing
        /// The repository belonged to this cluster and a missing or damaged twin was rewritten.
        case repaired
    }

    public struct Result: Sendable, Codable {
        public var outcome: Outcome
        public var location: String
        public var info: RepositoryInfo
    }

    /// Creates or confirms the repository for `cluster`.
    /// - Throws: `repo.foreign` when it belongs to another cluster; `repo.io`-family errors from the driver;
    ///   `repo.object-exists` when the location holds other objects but no `cairn.json`;
    ///   `repo.create-only-unsupported` when a new repository's store does not honour create-only writes.
    public static func run(repo: any Repository, cluster: ClusterInfo, clock: any WallClock) throws -> Result {
        let encrypted = repo as? EncryptedRepository
        if let existing = try RepositoryInfo.load(from: repo) {
            try existing.checkBelongs(to: cluster, repo: repo)
            try existing.checkEncryption(repo)
            _ = try encrypted?.keyring()
            let repaired = try repairTwins(repo: repo, info: existing)
            return Result(outcome: repaired ? .repaired : .existing, location: repo.location, info: existing)
        }
        let others = try repo.list(prefix: "").filter {
            !$0.key.hasPrefix(Layout.probePrefix) && $0.key != Keyring.key && $0.key != Keyring.copyKey
        }
        if !others.isEmpty {
            throw CairnError(
                .repoObjectExists,
                "\(repo.location) is not empty (\(others.count) objects, e.g. \(others[0].key)) and has no cairn.json",
                hint: "choose an empty location for a new repository (another path, or another S3 prefix)")
        }
        // A store that lets a create-only write replace an object cannot keep production's WAL safe.
        try RepositoryProbe.proveCreateOnly(repo: repo)
        // An encrypted repository's keyring comes first: cairn.json is the commit point of `init`.
        _ = try encrypted?.createKeyringIfMissing(now: clock.now())
        let info = RepositoryInfo(
            cluster: cluster, created: clock.now(), cairnVersion: CairnVersion.current,
            encryption: encrypted == nil ? nil : Keyring.cipher)
        let bytes = try SealedDocument.seal(info)
        do {
            try repo.put(RepositoryInfo.key, bytes, options: .createOnly)
        } catch let e as CairnError where e.code == .repoObjectExists {
            // Another init won the race: accept it if it is for this cluster.
            let other = try RepositoryInfo.require(from: repo)
            try other.checkBelongs(to: cluster, repo: repo)
            return Result(outcome: .existing, location: repo.location, info: other)
        }
        try repo.put(RepositoryInfo.copyKey, bytes, options: .overwrite)
        return Result(outcome: .created, location: repo.location, info: info)
    }

    /// Rewrites `cairn.json` or its copy when one is missing or damaged. Returns true when it wrote something.
    static func repairTwins(repo: any Repository, info: RepositoryInfo) throws -> Bool {
        let bytes = try SealedDocument.seal(info)
        var wrote = false
        for key in [RepositoryInfo.key, RepositoryInfo.copyKey] {
            let ok: Bool
            if let b = try repo.getBytesIfExists(key),
                (try? SealedDocument.open(RepositoryInfo.self, from: b, what: key)) == info
            {
                ok = true
            } else {
                ok = false
            }
            if !ok {
                try repo.put(key, bytes, options: .overwrite)
                wrote = true
            }
        }
        return wrote
    }
}
