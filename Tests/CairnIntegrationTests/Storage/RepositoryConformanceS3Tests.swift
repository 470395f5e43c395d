import CairnStorage
import Foundation
import TestSupport
import Testing

/// The repository contract (``Conformance``) on the S3 emulator, over plain HTTP and over TLS.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct RepositoryConformanceS3Tests {
    @Test func s3() throws {
        // 12 MiB with 5 MiB parts: the streaming writer goes multipart (3 parts, uploaded in parallel).
        let repo = S3Repository(settings: TestEnvironment.s3Settings())
        try Conformance.run(repo, largeObject: 12 << 20)
        #expect(try repo.list(prefix: "race/").map(\.key) == ["race/key"], "one winner of the create-only race")
    }

    /// SeaweedFS: a real S3 implementation, whose answers (create-only races, multipart, listing) are its own.
    @Test(.enabled(if: S3Server.tested.contains(.seaweed)))
    func s3OnSeaweedFS() throws {
        let repo = S3Repository(settings: TestEnvironment.s3Settings(server: .seaweed))
        try Conformance.run(repo, largeObject: 12 << 20)
        #expect(try repo.list(prefix: "race/").map(\.key) == ["race/key"], "one winner of the create-only race")
    }

    @Test func s3OverTLSWithCAFile() throws {
        let repo = S3Repository(settings: TestEnvironment.s3Settings(tls: true))
        try Conformance.run(repo, largeObject: 6 << 20)
        #expect(try repo.list(prefix: "race/").map(\.key) == ["race/key"], "one winner of the create-only race")
    }
}
