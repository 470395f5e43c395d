import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// The composition root: turns the configuration into drivers, pipelines and connections.
struct AppContext {
    let config: Configuration
    let environment: [String: String]
    let logger = Logger(label: "cairn")

    /// Loads the configuration named by `--config` / `$CAIRN_CONFIG` / `./cairn.yaml`.
    static func load(_ global: GlobalOptions) throws -> AppContext {
        let env = ProcessInfo.processInfo.environment
        let loader = ConfigLoader(environment: env)
        var config = try loader.load(path: loader.resolvePath(global.config))
        if let name = global.repo {
            guard let chosen = config.repositories.first(where: { $0.name == name }) else {
                throw CairnError(
                    .configInvalid,
                    "--repo \(name): no repository of that name in \(config.sourcePath ?? "cairn.yaml")",
                    hint: "configured: \(config.repositories.map(\.name).joined(separator: ", "))")
            }
            config.repositories = [chosen]
        }
        return AppContext(config: config, environment: env)
    }

    /// The configuration file's absolute path (for commands Cairn writes into PostgreSQL's settings).
    var absoluteConfigPath: String {
        let p = config.sourcePath ?? "cairn.yaml"
        return p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
    }

    /// The primary repository (the first configured, or the one `--repo` names), behind client-side encryption
    /// when configured.
    func makeRepository() throws -> any Repository { try makeRepository(config.repositories[0]) }

    /// Every configured repository (or the one `--repo` names), in order, each behind its encryption.
    func makeRepositories() throws -> RepositorySet {
        let all = try config.repositories.map { RepositorySet.Member(name: $0.name, repo: try makeRepository($0)) }
        return RepositorySet(all[0], others: Array(all.dropFirst()))
    }

    /// The first repository that is reachable and initialised (with several, one that is not is named and the next
    /// is tried), for `what`. It never goes past a damaged `cairn.json` to another repository: a drill proves the
    /// repository it names, and damage is what it is for (`cairn --repo NAME` chooses one).
    func reachableRepository(_ what: String) async throws -> RepositorySet.Member {
        let repos = try makeRepositories()
        return try await Blocking.run {
            try repos.firstSucceeding(what) { m in
                do {
                    _ = try RepositoryInfo.require(from: m.repo)
                    return m
                } catch let e as CairnError where [.dataCorrupt, .repoCorrupt].contains(e.code) {
                    throw CairnError(.restoreFailed, "repository \(m.name): \(e.message)", hint: e.hint)
                }
            }
        }
    }

    /// One configured repository's driver, behind client-side encryption when configured.
    func makeRepository(_ named: Configuration.NamedRepository) throws -> any Repository {
        let base = try makeDriver(named)
        guard let master = try masterKey(named) else { return base }
        return EncryptedRepository(base: base, master: master)
    }

    /// The master key of a repository (the primary by default; nil when it is plain); warns when its file is
    /// readable by others.
    func masterKey(_ named: Configuration.NamedRepository? = nil) throws -> MasterKey? {
        switch (named ?? config.repositories[0]).encryption {
        case nil: return nil
        case .environment(let name): return try MasterKey.load(variable: name, environment: environment)
        case .file(let path):
            var warnings: [String] = []
            let k = try MasterKey.load(file: path, warnings: &warnings)
            for w in warnings { logger.warning("\(w)") }
            return k
        }
    }

    /// The storage driver itself, without encryption (the primary's by default).
    func makeDriver(_ named: Configuration.NamedRepository? = nil) throws -> any Repository {
        switch (named ?? config.repositories[0]).kind {
        case .local(let path):
            return LocalRepository(root: path)
        case .s3(let s3):
            let (creds, source, warnings) = try CredentialResolver(environment: environment).resolve(s3)
            for w in warnings { logger.warning("\(w)") }
            let l = config.limits
            let lock = s3.objectLock.map {
                ObjectLockPolicy.s3Lock(mode: $0.mode, retention: config.retention, margin: $0.margin)
            }
            let settings = S3Settings(
                endpoint: s3.endpoint, bucket: s3.bucket, prefix: s3.prefix, region: s3.region,
                uriStyle: s3.uriStyle, caFile: s3.caFile, verifyTLS: s3.verifyTLS,
                storageClass: s3.storageClass, serverSideEncryption: s3.serverSideEncryption,
                kmsKeyId: s3.kmsKeyId, objectLock: lock, credentials: creds, partSize: Int(l.partSize),
                concurrency: l.parallelism, connectTimeout: l.connectTimeout,
                stallTimeout: l.ioTimeout, requestDeadline: l.requestTimeout, maxRetries: l.retries)
            return S3Repository(settings: settings, credentialSource: source)
        }
    }

    /// The transfer pipeline with the configured compression.
    func makePipeline() -> Pipeline {
        Pipeline(level: Int32(config.compression.level), workers: Int32(config.compression.threads))
    }

    /// The PostgreSQL client programs of the configured bin directory; without one (empty folder), the operations
    /// find them by the major they work on (`ToolRunner.matching`).
    var tools: ToolRunner { ToolRunner(binDirectory: config.cluster.binDirectory ?? "") }

    /// A connection to the cluster.
    func connect(overrides: [String: String] = [:]) throws -> PGConnection {
        try PGConnection(conninfo: config.cluster.connection, overrides: overrides)
    }
}
