import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnStorage

/// `Repository.identity`: what tells one store from another, for records that must match the store.
@Suite struct RepositoryIdentityTests {
    static func s3(
        _ endpoint: String, bucket: String = "b", prefix: String = "p", region: String = "eu-west-1"
    ) -> S3Repository {
        S3Repository(
            settings: S3Settings(
                endpoint: URL(string: endpoint)!, bucket: bucket, prefix: prefix, region: region,
                credentials: AWSCredentials(accessKeyId: "AKIDSECRETLESS", secretAccessKey: "very-secret")))
    }

    @Test func s3IdentityNamesEndpointRegionBucketAndPrefix() {
        let a = Self.s3("https://s3.example.com")
        #expect(a.location == Self.s3("http://127.0.0.1:9000").location, "the location alone does not tell them apart")
        #expect(a.identity == "s3://b/p endpoint=https://s3.example.com:443 region=eu-west-1")
        #expect(a.identity == Self.s3("HTTPS://S3.example.com:443").identity, "the same endpoint spelled otherwise")
        let others = [
            Self.s3("http://s3.example.com"), Self.s3("https://s3.example.com:8443"),
            Self.s3("https://other.example.com"),
            Self.s3("https://s3.example.com", region: "us-east-1"), Self.s3("https://s3.example.com", bucket: "c"),
            Self.s3("https://s3.example.com", prefix: "p/q")
        ]
        for o in others { #expect(o.identity != a.identity, "\(o.identity)") }
        #expect(!a.identity.contains("secret") && !a.identity.contains("AKID"))
    }

    @Test func localIdentityIsTheRealPath() throws {
        let dir = try TestEnvironment.tempDirectory("identity")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/repo", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/repo")
        let real = LocalRepository(root: dir + "/repo/").identity
        #expect(real.hasPrefix("/") && real.hasSuffix("/repo"))
        #expect(LocalRepository(root: dir + "/link").identity == real)
        #expect(LocalRepository(root: dir + "/repo/../repo").identity == real)
        #expect(LocalRepository(root: dir + "/other").identity != real)
        #expect(MemoryRepository().identity == MemoryRepository().location)
    }
}
