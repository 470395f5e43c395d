import CairnBase
import Crypto
import Foundation
import TestSupport
import Testing

@testable import CairnCore
@testable import CairnStorage

/// 200 MiB through the pipeline into both real drivers and back, byte-exact; on S3 as a parallel multipart upload.
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct PipelineLargeObjectTests {
    static let total = 200 << 20

    /// Streams `total` bytes of mixed content (3/4 noise, 1/4 text) into the store, returning their SHA-256.
    static func storeGenerated(_ repo: any Repository, key: String) throws -> (ObjectDigest, String) {
        let s = try Pipeline(level: 1).beginStore(repo, key: key, options: .createOnly)
        var hasher = SHA256()
        var x: UInt64 = 0x2545_F491_4F6C_DD1D
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        defer { chunk.deallocate() }
        let words = chunk.bindMemory(to: UInt64.self)
        for i in 0..<(total >> 20) {
            for w in 0..<words.count {
                if i % 4 == 3 {
                    words[w] = 0x6F6C_6C65_6820_2020
                } else {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17
                    words[w] = x
                }
            }
            let bytes = UnsafeRawBufferPointer(chunk)
            hasher.update(bufferPointer: bytes)
            try s.write(bytes)
        }
        return (try s.finish(), Hex.encode(hasher.finalize()))
    }

    static func roundTrip(_ repo: any Repository) throws -> ObjectDigest {
        let (digest, sha) = try storeGenerated(repo, key: "large/object.zst")
        #expect(digest.size == Int64(total))
        #expect(digest.sha256 == sha)
        var hasher = SHA256()
        var n = 0
        let back = try Pipeline().load(repo, key: "large/object.zst", expected: digest) { buf in
            hasher.update(bufferPointer: buf)
            n += buf.count
        }
        #expect(n == total)
        #expect(Hex.encode(hasher.finalize()) == sha)
        #expect(back == digest)
        return digest
    }

    @Test func localFolder() throws {
        let dir = try TestEnvironment.tempDirectory("large-local")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.roundTrip(LocalRepository(root: dir))
    }

    @Test func s3Multipart() throws {
        let repo = S3Repository(settings: TestEnvironment.s3Settings(partSize: 5 << 20))
        let digest = try Self.roundTrip(repo)
        // The object went up in parts: S3 multipart ETags end in -<number of parts>.
        let r = try repo.client.send(S3Client.Request(method: "HEAD", key: "large/object.zst"))
        let parts = Int(r.headers["etag"]?.split(separator: "-").last?.filter(\.isNumber) ?? "") ?? 0
        #expect(parts == Int((digest.storedSize + (5 << 20) - 1) / (5 << 20)))
        #expect(parts > 30)
        try repo.delete(["large/object.zst"])
    }
}
