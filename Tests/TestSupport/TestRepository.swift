import Foundation

/// The two real repository kinds integration tests run against.
public enum RepoKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case local, s3
    public var description: String { rawValue }
}

/// Writes cairn configurations (owned by the postgres user, as archive_command needs) for scratch clusters.
public enum TestRepository {
    /// Writes `dir/cairn.yaml` for a cluster at `conninfo` with a fresh repository of `kind`. With `masterKey` (base64),
    /// the repository is encrypted with that key, kept in `dir/master.key` (mode 0600). `cluster.bin_directory` is
    /// that of `major` (the cluster's).
    public static func config(
        _ kind: RepoKind, dir: String, conninfo: String, major: PGMajor = .v15, limits: [String] = [],
        extra: String = "", masterKey: String? = nil, cluster: [String] = []
    ) throws -> String {
        let path = dir + "/cairn.yaml"
        var repo: String
        switch kind {
        case .local:
            repo = "  type: local\n  path: \(dir)/repo"
        case .s3:
            let creds = dir + "/aws-credentials"
            try """
            [default]
            aws_access_key_id = \(TestEnvironment.value("CAIRN_TEST_S3_ACCESS_KEY"))
            aws_secret_access_key = \(TestEnvironment.value("CAIRN_TEST_S3_SECRET_KEY"))
            """.write(toFile: creds, atomically: true, encoding: .utf8)
            try Run.shell("chown postgres:postgres \(creds) && chmod 600 \(creds)")
            repo = """
                  type: s3
                  bucket: \(TestEnvironment.value("CAIRN_TEST_S3_BUCKET"))
                  prefix: \(TestEnvironment.uniqueName("it"))
                  endpoint: \(TestEnvironment.value("CAIRN_TEST_S3_TLS_ENDPOINT"))
                  ca_file: \(TestEnvironment.value("CAIRN_TEST_S3_CA"))
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
        try """
        cluster:
          connection: "\(conninfo)"
          bin_directory: \(major.bin)
        \(cluster.map { "  " + $0 }.joined(separator: "\n"))
        repository:
        \(repo)
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
