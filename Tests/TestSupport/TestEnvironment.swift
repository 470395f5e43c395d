import CairnStorage
import Foundation

/// The services the integration tests use, as `scripts/test-env.sh up` describes them in its env.sh.
///
/// When `CAIRN_TEST_REQUIRE_SERVICES=1` (set by `scripts/test.sh` and CI) a missing service is a test failure;
/// otherwise integration tests are skipped, so `swift test` alone still runs the unit tests.
public enum TestEnvironment {
    public static let env = ProcessInfo.processInfo.environment

    /// True when the test services are described in the environment.
    public static var hasServices: Bool { env["CAIRN_TEST_S3_ENDPOINT"] != nil && env["CAIRN_TEST_PGPORT"] != nil }

    /// True when integration tests must run (CI).
    public static var servicesRequired: Bool { env["CAIRN_TEST_REQUIRE_SERVICES"] == "1" }

    /// Whether integration tests run: services present, or required (then they fail loudly if absent).
    public static var integrationEnabled: Bool { hasServices || servicesRequired }

    public static func value(_ name: String) -> String {
        env[name] ?? ""
    }

    /// A fresh, unique name for a test's repository prefix or folder.
    public static func uniqueName(_ base: String) -> String {
        "\(base)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// A new empty folder under the test state directory (or /tmp).
    public static func tempDirectory(_ base: String) throws -> String {
        let root = env["CAIRN_TEST_STATE"].map { $0 + "/tmp" } ?? NSTemporaryDirectory() + "cairn-tests"
        let dir = root + "/" + uniqueName(base)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// S3 settings for a test S3 server (moto unless `server` says otherwise; plain HTTP unless `tls`, which only
    /// moto has), with a unique prefix.
    public static func s3Settings(
        prefix: String? = nil, tls: Bool = false, secret: String? = nil,
        bucket: String? = nil, partSize: Int = 5 << 20, server: S3Server = .moto
    ) -> S3Settings {
        let endpoint = URL(string: tls ? server.tlsEndpoint ?? server.endpoint : server.endpoint)!
        return S3Settings(
            endpoint: endpoint, bucket: bucket ?? server.bucket,
            prefix: prefix ?? uniqueName("t"), region: value("CAIRN_TEST_S3_REGION"),
            uriStyle: .path, caFile: tls && server.tlsEndpoint != nil ? value("CAIRN_TEST_S3_CA") : nil,
            credentials: AWSCredentials(
                accessKeyId: server.accessKey, secretAccessKey: secret ?? server.secretKey),
            partSize: partSize, concurrency: 4, connectTimeout: 5, stallTimeout: 20,
            requestDeadline: 60, maxRetries: 3)
    }
}

/// Figures a test measured, appended to $CAIRN_TEST_STATE/measurements.txt for the closing notes.
public enum Measurements {
    public static func record(_ lines: [String]) {
        let file = (TestEnvironment.env["CAIRN_TEST_STATE"] ?? NSTemporaryDirectory()) + "/measurements.txt"
        if !FileManager.default.fileExists(atPath: file) {
            _ = FileManager.default.createFile(atPath: file, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: file) else { return }
        h.seekToEndOfFile()
        h.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        h.closeFile()
    }
}
