import Foundation

/// The real repository kinds integration tests run against: a local folder, S3 on moto (over TLS) and S3 on
/// SeaweedFS (plain HTTP).
public enum RepoKind: String, Sendable, CustomStringConvertible {
    case local, s3, seaweed
    public var description: String { rawValue }

    /// The kinds a repository-parameterized test runs on: the local folder and moto. The tests that also run on
    /// SeaweedFS name `.seaweed` (the conformance suite, physical backups restored, the campaigns), so the second
    /// S3 server costs CI minutes only where it can find something.
    public static let standard: [RepoKind] = [.local, .s3]

    /// ``standard`` and SeaweedFS, when it is among ``S3Server/tested``.
    public static var withSeaweed: [RepoKind] { standard + (S3Server.tested.contains(.seaweed) ? [.seaweed] : []) }

    /// The S3 server of an S3 kind.
    public var server: S3Server? {
        switch self {
        case .local: return nil
        case .s3: return .moto
        case .seaweed: return .seaweed
        }
    }
}

/// Writes cairn configurations (owned by the postgres user, as archive_command needs) for scratch clusters.
public enum TestRepository {
    /// Writes `dir/cairn.yaml` for a cluster at `conninfo` with a fresh repository of `kind`. With `masterKey` (base64),
    /// the repository is encrypted with that key, kept in `dir/master.key` (mode 0600). `cluster.bin_directory` is
    /// that of `major` (the cluster's). `bucket` replaces an S3 kind's bucket; `repository` lines go into the
    /// repository section (e.g. `object_lock:` and its keys, indented by two more spaces).
    public static func config(
        _ kind: RepoKind, dir: String, conninfo: String, major: PGMajor = .v15, limits: [String] = [],
        extra: String = "", masterKey: String? = nil, cluster: [String] = [], bucket: String? = nil,
        repository: [String] = []
    ) throws -> String {
        let repo = try section(kind, dir: dir, name: nil, masterKey: masterKey, bucket: bucket, lines: repository)
        return try write(
            dir: dir, conninfo: conninfo, major: major, repositories: "repository:\n" + repo, limits: limits,
            extra: extra, cluster: cluster)
    }

    /// Writes `dir/cairn.yaml` with several repositories (`repositories:`), named `<kind>-<position>` (e.g.
    /// `local-1`, `s3-2`), each fresh: local folders at `dir/repo-<position>`, S3 kinds under their own prefix.
    public static func config(
        _ kinds: [RepoKind], dir: String, conninfo: String, major: PGMajor = .v15, limits: [String] = [],
        extra: String = "", masterKey: String? = nil
    ) throws -> String {
        var text = "repositories:"
        for (i, kind) in kinds.enumerated() {
            let body = try section(
                kind, dir: dir, name: "\(kind)-\(i + 1)", masterKey: masterKey, bucket: nil, lines: [])
            text +=
                "\n  - name: \(kind)-\(i + 1)\n" + body.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
        }
        return try write(
            dir: dir, conninfo: conninfo, major: major, repositories: text, limits: limits, extra: extra, cluster: [])
    }

    /// The keys of one repository section, each line indented by two spaces. `name` (of one of several) gives a
    /// local folder and a credentials file of its own.
    static func section(
        _ kind: RepoKind, dir: String, name: String?, masterKey: String?, bucket: String?, lines: [String]
    ) throws -> String {
        var repo: String
        switch kind {
        case .local:
            repo = "  type: local\n  path: \(dir)/repo\(name.map { "-" + $0 } ?? "")"
        case .s3, .seaweed:
            let server = kind.server!
            let creds = dir + "/aws-credentials" + (name.map { "-" + $0 } ?? "")
            try server.writeCredentials(to: creds)
            let endpoint =
                server.tlsEndpoint.map { "endpoint: \($0)\n  ca_file: \(TestEnvironment.value("CAIRN_TEST_S3_CA"))" }
                ?? "endpoint: \(server.endpoint)"
            repo = """
                  type: s3
                  bucket: \(bucket ?? server.bucket)
                  prefix: \(TestEnvironment.uniqueName("it"))
                  \(endpoint)
                  region: \(TestEnvironment.value("CAIRN_TEST_S3_REGION"))
                  uri_style: path
                  credentials_file: \(creds)
                """
        }
        if let masterKey {
            try (masterKey + "\n").write(toFile: dir + "/master.key", atomically: true, encoding: .utf8)
            try Run.shell("chown postgres:postgres \(dir)/master.key && chmod 600 \(dir)/master.key")
            repo += "\n  encryption:\n    key_file: \(dir)/master.key"
        }
        for line in lines { repo += "\n  " + line }
        return repo
    }

    /// Writes the configuration file, owned by postgres.
    static func write(
        dir: String, conninfo: String, major: PGMajor, repositories: String, limits: [String], extra: String,
        cluster: [String]
    ) throws -> String {
        let path = dir + "/cairn.yaml"
        try """
        cluster:
          connection: "\(conninfo)"
          bin_directory: \(major.bin)
        \(cluster.map { "  " + $0 }.joined(separator: "\n"))
        \(repositories)
        limits:
          part_size: 5MiB
          request_timeout: 60s
          retries: 4
        \(limits.map { "  " + $0 }.joined(separator: "\n"))
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres:postgres \(path) && chmod 644 \(path)")
        return path
    }
}
