import Foundation

/// The test PostgreSQL cluster started by `scripts/test-env.sh` and configuration files that point at it.
public enum TestCluster {
    /// libpq connection string for the test cluster.
    public static var conninfo: String {
        "host=\(TestEnvironment.value("CAIRN_TEST_PGHOST")) port=\(TestEnvironment.value("CAIRN_TEST_PGPORT")) user=postgres dbname=postgres"
    }

    public static var binDirectory: String { TestEnvironment.env["CAIRN_TEST_PG_BIN"] ?? "/usr/lib/postgresql/15/bin" }

    /// Runs SQL with psql against the test cluster and returns its unaligned output.
    @discardableResult
    public static func psql(_ sql: String, database: String = "postgres") throws -> String {
        let r = try Run.program(
            binDirectory + "/psql",
            [
                "-h", TestEnvironment.value("CAIRN_TEST_PGHOST"), "-p", TestEnvironment.value("CAIRN_TEST_PGPORT"),
                "-U", "postgres", "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql
            ])
        guard r.status == 0 else { throw TestFailure("psql failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes a `cairn.yaml` for the test cluster and a local repository folder; returns its path.
    public static func localConfig(repo: String, in dir: String, extra: String = "") throws -> String {
        let path = dir + "/cairn.yaml"
        try """
        cluster:
          connection: "\(conninfo)"
          bin_directory: \(binDirectory)
        repository:
          type: local
          path: \(repo)
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Writes a `cairn.yaml` for the test cluster and an S3 repository under a unique prefix, with the
    /// credentials in a 0600 credentials file next to it. Returns the config path.
    public static func s3Config(
        prefix: String, in dir: String, tls: Bool = false, secret: String? = nil,
        bucket: String? = nil, extra: String = ""
    ) throws -> String {
        let creds = dir + "/aws-credentials"
        try """
        [default]
        aws_access_key_id = \(TestEnvironment.value("CAIRN_TEST_S3_ACCESS_KEY"))
        aws_secret_access_key = \(secret ?? TestEnvironment.value("CAIRN_TEST_S3_SECRET_KEY"))
        """.write(toFile: creds, atomically: true, encoding: .utf8)
        chmod(creds, 0o600)
        let endpoint = TestEnvironment.value(tls ? "CAIRN_TEST_S3_TLS_ENDPOINT" : "CAIRN_TEST_S3_ENDPOINT")
        let path = dir + "/cairn.yaml"
        try """
        cluster:
          connection: "\(conninfo)"
          bin_directory: \(binDirectory)
        repository:
          type: s3
          bucket: \(bucket ?? TestEnvironment.value("CAIRN_TEST_S3_BUCKET"))
          prefix: \(prefix)
          endpoint: \(endpoint)
          region: \(TestEnvironment.value("CAIRN_TEST_S3_REGION"))
          uri_style: path
          credentials_file: \(creds)
        \(tls ? "  ca_file: \(TestEnvironment.value("CAIRN_TEST_S3_CA"))" : "")
        limits:
          part_size: 5MiB
          request_timeout: 60s
          retries: 3
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
