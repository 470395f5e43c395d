import Foundation

/// The S3 servers the integration tests run against, as `scripts/test-env.sh up` starts them: moto (the emulator,
/// on plain HTTP and behind nginx over TLS) and SeaweedFS (a real S3 implementation, plain HTTP). Each has a
/// bucket, a bucket with Object Lock (and so versioning) enabled, and keys of its own.
public enum S3Server: String, CaseIterable, Sendable, CustomStringConvertible {
    case moto
    case seaweed

    public var description: String { rawValue }

    /// The servers the server-parameterized tests take as arguments: `CAIRN_TEST_S3_SERVERS` (comma-separated, e.g.
    /// `moto`), all of them when unset or empty. An unknown name stops the run rather than silently testing less.
    public static var tested: [S3Server] {
        let names = (TestEnvironment.env["CAIRN_TEST_S3_SERVERS"] ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        if names.isEmpty { return allCases }
        return names.map { name in
            guard let s = S3Server(rawValue: name) else {
                preconditionFailure("CAIRN_TEST_S3_SERVERS: \(name) is not a test S3 server (moto, seaweed)")
            }
            return s
        }
    }

    private var variablePrefix: String { self == .moto ? "CAIRN_TEST_S3_" : "CAIRN_TEST_SEAWEED_" }
    private func value(_ name: String) -> String { TestEnvironment.value(variablePrefix + name) }

    /// The plain-HTTP endpoint.
    public var endpoint: String { value("ENDPOINT") }
    /// The TLS endpoint (moto behind nginx); nil for SeaweedFS, which the tests reach over plain HTTP only.
    public var tlsEndpoint: String? { self == .moto ? value("TLS_ENDPOINT") : nil }
    public var bucket: String { value("BUCKET") }
    /// A bucket created with Object Lock enabled.
    public var lockBucket: String { value("LOCK_BUCKET") }
    public var accessKey: String { value("ACCESS_KEY") }
    public var secretKey: String { value("SECRET_KEY") }

    /// The server whose plain-HTTP endpoint is `endpoint` (moto when none matches, e.g. a proxy in front of it).
    public static func serving(_ endpoint: String) -> S3Server {
        allCases.first { !$0.endpoint.isEmpty && $0.endpoint == endpoint } ?? .moto
    }

    /// An AWS credentials file with this server's keys at `path`, owned by postgres, mode 0600.
    public func writeCredentials(to path: String) throws {
        try """
        [default]
        aws_access_key_id = \(accessKey)
        aws_secret_access_key = \(secretKey)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres:postgres \(path) && chmod 600 \(path)")
    }
}
