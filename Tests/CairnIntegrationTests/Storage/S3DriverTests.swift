import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnStorage

#if canImport(Glibc)
    import Glibc
#endif

/// S3 behaviour against the emulator with SigV4 enforced: errors users meet, batching, paging, headers.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct S3DriverTests {
    func code(_ body: () throws -> Void) -> CairnError? {
        do { try body(); return nil } catch let e as CairnError { return e } catch { return nil }
    }

    @Test func wrongSecretIsReportedAsAuthWithAHint() throws {
        let repo = S3Repository(
            settings: TestEnvironment.s3Settings(secret: "not-the-secret"),
            credentialSource: "AWS_SECRET_ACCESS_KEY in the environment")
        for op in [
            { _ = try repo.list(prefix: "") }, { try repo.put("x", [1], options: .overwrite) },
            { _ = try repo.getBytes("x") }
        ] as [() throws -> Void] {
            let e = try #require(code(op))
            #expect(e.code == .repoAuth)
            #expect(e.message.contains("SignatureDoesNotMatch"))
            #expect(e.hint?.contains("AWS_SECRET_ACCESS_KEY") == true)
            #expect(!e.description.contains("not-the-secret"))
        }
    }

    @Test func unknownAccessKey() throws {
        var s = TestEnvironment.s3Settings()
        s.credentials = AWSCredentials(accessKeyId: "AKIAUNKNOWNUNKNOWN00", secretAccessKey: "x")
        let e = try #require(code { _ = try S3Repository(settings: s).list(prefix: "") })
        #expect(e.code == .repoAuth)
        #expect(e.message.contains("InvalidAccessKeyId"))
    }

    @Test func missingBucket() throws {
        let repo = S3Repository(settings: TestEnvironment.s3Settings(bucket: "no-such-bucket-here"))
        #expect(code { _ = try repo.list(prefix: "") }?.code == .repoBucketMissing)
        #expect(code { try repo.put("k", [1], options: .overwrite) }?.code == .repoBucketMissing)
        #expect(code { _ = try repo.head("k") }?.code == .repoBucketMissing)
        #expect(code { _ = try repo.getBytes("k") }?.code == .repoBucketMissing)
    }

    @Test func unreachableEndpointFailsFastWithAHint() throws {
        var s = TestEnvironment.s3Settings()
        s.endpoint = URL(string: "http://127.0.0.1:\(Self.closedPort())")!
        s.maxRetries = 2
        let start = Date()
        let e = try #require(code { _ = try S3Repository(settings: s).list(prefix: "") })
        #expect(e.code == .repoUnreachable)
        #expect(e.hint?.contains("endpoint") == true)
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func unresolvableHostSuggestsPathStyle() throws {
        var s = TestEnvironment.s3Settings()
        s.endpoint = URL(string: "http://no-such-host.invalid:9000")!
        s.uriStyle = .host
        s.maxRetries = 0
        let e = try #require(code { _ = try S3Repository(settings: s).list(prefix: "") })
        #expect(e.code == .repoUnreachable)
        #expect(e.hint?.contains("uri_style: path") == true)
    }

    /// A server that accepts connections but never answers must not hang Cairn.
    @Test func hungServerHitsTheDeadline() throws {
        let (fd, port) = try Self.silentListener()
        defer { close(fd) }
        var s = TestEnvironment.s3Settings()
        s.endpoint = URL(string: "http://127.0.0.1:\(port)")!
        s.stallTimeout = 1
        s.requestDeadline = 4
        s.maxRetries = 5
        let start = Date()
        let e = try #require(code { _ = try S3Repository(settings: s).getBytes("x") })
        #expect(e.code == .repoTimeout)
        #expect(Date().timeIntervalSince(start) < 8)
    }

    @Test func tlsWithoutTheCAIsRefused() throws {
        var s = TestEnvironment.s3Settings(tls: true)
        s.caFile = nil
        s.maxRetries = 0
        let e = try #require(code { _ = try S3Repository(settings: s).list(prefix: "") })
        #expect(e.code == .repoTLS)
        #expect(e.hint?.contains("ca_file") == true)
    }

    @Test func deletesAndListsBeyondOneThousandKeys() throws {
        let repo = S3Repository(settings: TestEnvironment.s3Settings())
        let keys = (0..<1003).map { String(format: "many/%05d", $0) }
        DispatchQueue.concurrentPerform(iterations: 4) { w in
            for k in stride(from: w, to: keys.count, by: 4) {
                _ = try? repo.put(keys[k], [UInt8(k & 0xff)], options: .overwrite)
            }
        }
        #expect(try repo.list(prefix: "many/").map(\.key) == keys)
        try repo.delete(keys)
        #expect(try repo.list(prefix: "many/").isEmpty)
    }

    @Test func storageClassAndServerSideEncryptionAreSent() throws {
        var s = TestEnvironment.s3Settings()
        s.storageClass = "STANDARD_IA"
        s.serverSideEncryption = "AES256"
        let repo = S3Repository(settings: s)
        try repo.put("sc/object", Array(repeating: 1, count: 100), options: .overwrite)
        let w = try repo.makeWriter("sc/multipart", options: .overwrite)
        try Array(repeating: UInt8(2), count: 11 << 20).withUnsafeBytes { try w.write($0) }
        _ = try w.finish()
        for key in ["sc/object", "sc/multipart"] {
            let r = try repo.client.send(S3Client.Request(method: "HEAD", key: key))
            #expect(r.headers["x-amz-storage-class"] == "STANDARD_IA", "\(key)")
            #expect(r.headers["x-amz-server-side-encryption"] == "AES256", "\(key)")
        }
    }

    @Test func virtualHostStyleAddressing() throws {
        // curl resolves *.localhost to the loopback address, so bucket.localhost:port reaches the emulator.
        var s = TestEnvironment.s3Settings()
        let port = s.endpoint.port!
        s.endpoint = URL(string: "http://localhost:\(port)")!
        s.uriStyle = .host
        let repo = S3Repository(settings: s)
        try repo.put("vhost/a", [1, 2, 3], options: .createOnly)
        #expect(try repo.getBytes("vhost/a") == [1, 2, 3])
        #expect(try repo.list(prefix: "vhost/").map(\.key) == ["vhost/a"])
        // The same object is visible path-style: both styles address the same bucket.
        var p = s
        p.uriStyle = .path
        #expect(try S3Repository(settings: p).getBytes("vhost/a") == [1, 2, 3])
    }

    @Test func abortedMultipartLeavesNoUpload() throws {
        let repo = S3Repository(settings: TestEnvironment.s3Settings())
        let w = try repo.makeWriter("mp/aborted", options: .overwrite)
        try Array(repeating: UInt8(3), count: 12 << 20).withUnsafeBytes { try w.write($0) }
        w.abort()
        #expect(try repo.head("mp/aborted") == nil)
        var req = S3Client.Request(method: "GET", key: nil)
        req.query = [("uploads", ""), ("prefix", repo.client.fullKey("mp/"))]
        let r = try repo.client.send(req)
        #expect(XMLElement.parse(r.body)?.all("Upload").isEmpty == true)
    }

    // MARK: helpers

    static func closedPort() -> Int {
        let (fd, port) = try! silentListener()
        close(fd)
        return port
    }

    /// A TCP socket that accepts connections (via the backlog) and never reads or answers.
    static func silentListener() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafePointer(to: &addr) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(fd, $0, len) == 0 else { throw CairnError(.internal, "bind failed") }
            }
        }
        listen(fd, 16)
        withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) }
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }
}
