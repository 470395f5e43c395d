import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// `cairn.json`: which cluster a repository belongs to. Written at `cairn init`, with a `cairn.json.copy` twin
/// so that one damaged copy does not make the repository unusable.
public struct RepositoryInfo: Codable, Sendable, Equatable {
    /// The newest repository layout version this build reads: 1 = plain, 2 = client-side encrypted (format 2 makes
    /// a cairn that predates encryption refuse the repository instead of misreading it).
    public static let currentFormat = 2
    public static let key = Layout.repositoryInfoKey
    public static let copyKey = Layout.repositoryInfoCopyKey

    public var format: Int
    public var systemIdentifier: String
    public var pgVersionNum: Int
    public var walSegmentSize: Int64
    public var created: Date
    public var cairnVersion: String
    /// The cipher of client-side encryption (`aes-256-gcm`, keys in `keyring.json`); nil for a plain repository.
    public var encryption: String?

    public var pgMajor: Int { pgVersionNum / 10000 }

    enum CodingKeys: String, CodingKey {
        case format
        case systemIdentifier = "system_identifier"
        case pgVersionNum = "pg_version_num"
        case walSegmentSize = "wal_segment_size"
        case created
        case cairnVersion = "cairn_version"
        case encryption
    }

    public init(cluster: ClusterInfo, created: Date, cairnVersion: String, encryption: String? = nil) {
        format = encryption == nil ? 1 : 2
        self.encryption = encryption
        systemIdentifier = cluster.systemIdentifier
        pgVersionNum = cluster.versionNum
        walSegmentSize = cluster.walSegmentSize
        self.created = created
        self.cairnVersion = cairnVersion
    }

    /// Reads `cairn.json`, falling back to the copy when the main file is missing or damaged.
    /// Returns nil when neither exists (the repository is not initialised).
    public static func load(from repo: any Repository) throws -> RepositoryInfo? {
        var firstError: (any Error)?
        for key in [key, copyKey] {
            do {
                guard let bytes = try repo.getBytesIfExists(key) else { continue }
                let info = try SealedDocument.open(RepositoryInfo.self, from: bytes, what: "\(key) in \(repo.location)")
                guard info.format <= currentFormat else {
                    throw CairnError(
                        .repoCorrupt,
                        "repository \(repo.location) has format \(info.format); this cairn reads up to \(currentFormat)",
                        hint: "upgrade cairn")
                }
                return info
            } catch let e as CairnError where e.code == .repoCorrupt {
                firstError = firstError ?? e
            }
        }
        if let firstError { throw firstError }
        return nil
    }

    /// Loads and requires an initialised repository.
    public static func require(from repo: any Repository) throws -> RepositoryInfo {
        guard let info = try load(from: repo) else {
            throw CairnError(
                .repoUninitialized, "repository \(repo.location) is not initialised (no cairn.json)",
                hint: "run `cairn init` to create it for this cluster")
        }
        try info.checkEncryption(repo)
        return info
    }

    /// Throws `key.missing` when the repository is encrypted but `repo` has no master key, `config.invalid` in the
    /// opposite case.
    public func checkEncryption(_ repo: any Repository) throws {
        let keyed = repo.capabilities.contains(.decrypts)
        if encryption != nil && !keyed {
            throw CairnError(
                .keyMissing,
                "repository \(repo.location) is encrypted (\(encryption!)), but no master key is configured",
                hint: Pipeline.keyHint)
        }
        if encryption == nil && keyed {
            throw CairnError(
                .configInvalid, "repository \(repo.location) is not encrypted, but repository.encryption is configured",
                hint:
                    "remove repository.encryption from cairn.yaml to use this repository, or run `cairn init` at a new location to create an encrypted one"
            )
        }
    }

    /// Throws `repo.foreign` unless the repository belongs to this cluster, `pg.version` on a major mismatch.
    public func checkBelongs(to cluster: ClusterInfo, repo: any Repository) throws {
        if cluster.systemIdentifier != systemIdentifier {
            throw CairnError(
                .repoForeign,
                "repository \(repo.location) belongs to cluster \(systemIdentifier), not to this cluster (\(cluster.systemIdentifier))",
                hint:
                    "point repository at this cluster's own location (another prefix or path); never share one repository between clusters"
            )
        }
        if cluster.majorVersion != pgMajor {
            throw CairnError(
                .pgVersion,
                "repository \(repo.location) holds PostgreSQL \(pgMajor) backups but the cluster runs PostgreSQL \(cluster.majorVersion)",
                hint: "after a major upgrade, start a new repository (new path or prefix) and run `cairn init`")
        }
    }
}
