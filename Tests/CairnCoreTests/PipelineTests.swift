import CairnBase
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

@Suite struct PipelineTests {
    static func content(_ n: Int) -> [UInt8] {
        // Half compressible text, half noise.
        var x: UInt64 = 88172645463325252
        return (0..<n).map { i in
            if (i / 4096) % 2 == 0 { return UInt8(ascii: "a") + UInt8(i % 7) }
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    @Test func roundTripRecordsBothDigests() throws {
        let repo = MemoryRepository()
        let data = Self.content(3 << 20)
        let p = Pipeline(level: 3)
        let d = try p.store(repo, key: "obj", bytes: data, options: .createOnly)
        #expect(d.size == Int64(data.count))
        #expect(d.storedSize < d.size)
        #expect(d.storedSize == (try repo.head("obj")?.size))
        var back = [UInt8]()
        let check = try p.load(repo, key: "obj", expected: d) { back.append(contentsOf: $0) }
        #expect(back == data)
        #expect(check == d)
    }

    @Test func emptyContent() throws {
        let repo = MemoryRepository()
        let d = try Pipeline().store(repo, key: "e", bytes: [], options: .overwrite)
        #expect(d.size == 0)
        var n = 0
        try Pipeline().load(repo, key: "e", expected: d) { n += $0.count }
        #expect(n == 0)
    }

    /// Any zstd tool can read a stored object: the trailer is a skippable frame.
    @Test func storedObjectsAreStandardZstd() throws {
        let dir = try TestEnvironment.tempDirectory("zstd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = LocalRepository(root: dir)
        let data = Self.content(300_000)
        try Pipeline().store(repo, key: "x.zst", bytes: data, options: .overwrite)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/zstd")
        p.arguments = ["-d", "-q", "-f", dir + "/x.zst", "-o", dir + "/x"]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(FileManager.default.contents(atPath: dir + "/x") == Data(data))
    }

    @Test(arguments: [0, 100, 5000, -1, -20])
    func everyBitFlipIsDetected(at position: Int) throws {
        let repo = MemoryRepository()
        let data = Self.content(20000)
        let d = try Pipeline().store(repo, key: "o", bytes: data, options: .overwrite)
        repo.tamper("o") { b in
            let i = position >= 0 ? position : b.count + position
            b[i] ^= 0x10
        }
        let error = #expect(throws: CairnError.self) {
            try Pipeline().load(repo, key: "o", expected: nil) { _ in }
        }
        #expect(error?.code == .dataCorrupt)
        // With the manifest's digest the damage is named too.
        #expect(throws: CairnError.self) { try Pipeline().load(repo, key: "o", expected: d) { _ in } }
    }

    @Test(arguments: [1, 56, 57, 1000])
    func truncationIsDetected(dropping n: Int) throws {
        let repo = MemoryRepository()
        try Pipeline().store(repo, key: "o", bytes: Self.content(20000), options: .overwrite)
        repo.tamper("o") { $0.removeLast(n) }
        let error = #expect(throws: CairnError.self) { try Pipeline().load(repo, key: "o") { _ in } }
        #expect(error?.code == .dataCorrupt)
        #expect(error?.message.contains("damaged") == true)
    }

    @Test func aStoreThatFailsLeavesNothing() throws {
        let repo = MemoryRepository()
        let s = try Pipeline().beginStore(repo, key: "half", options: .createOnly)
        try Self.content(10000).withUnsafeBytes { try s.write($0) }
        s.abort()
        #expect(try repo.head("half") == nil)
    }
}

/// Every single-bit flip of a stored (plain) object is detected, compressed frames and trailer alike.
@Suite struct PipelineExhaustiveDamageTests {
    @Test func everyBitFlipOfAPlainObjectIsDetected() throws {
        let repo = MemoryRepository()
        let data = PipelineTests.content(5000)
        try Pipeline().store(repo, key: "wal/s", bytes: data, options: .createOnly)
        let original = try repo.getBytes("wal/s")
        var missed: [Int] = []
        for bit in 0..<(original.count * 8) {
            repo.tamper("wal/s") {
                $0 = original; $0[bit / 8] ^= UInt8(1 << (bit % 8))
            }
            do { try Pipeline().load(repo, key: "wal/s") { _ in }; missed.append(bit) } catch {}
        }
        #expect(missed.isEmpty, "undetected flips at bits \(missed) of \(original.count * 8)")
    }

    /// Backup bundles (format 3: no content SHA-256) are checked by the stored bytes' SHA-256 and zstd's content
    /// checksums: every single-bit flip is still detected, read as a restore does (against the manifest's digest,
    /// without hashing the content) and as `verify` does.
    @Test func everyBitFlipOfABundleObjectIsDetected() throws {
        let repo = MemoryRepository()
        let data = PipelineTests.content(5000)
        let s = try Pipeline().beginStore(repo, key: "b", options: .createOnly, contentDigest: false)
        try data.withUnsafeBytes { try s.write($0) }
        let d = try s.finish()
        #expect(d.sha256.isEmpty && d.size == 5000)
        var back = [UInt8]()
        try Pipeline().load(repo, key: "b", expected: d, hashContent: false) { back += $0 }
        #expect(back == data)
        let original = try repo.getBytes("b")
        #expect(Array(Array(original.suffix(ObjectFormat.trailerLength))[8..<16]) == ObjectFormat.tagV3)
        var missed: [Int] = []
        for bit in 0..<(original.count * 8) {
            repo.tamper("b") {
                $0 = original; $0[bit / 8] ^= UInt8(1 << (bit % 8))
            }
            let restore = (try? Pipeline().load(repo, key: "b", expected: d, hashContent: false) { _ in }) != nil
            let verify = (try? Pipeline().load(repo, key: "b") { _ in }) != nil
            if restore || verify { missed.append(bit) }
        }
        #expect(missed.isEmpty, "undetected flips at bits \(missed) of \(original.count * 8)")
    }

    /// Objects written before the trailer held the compressed bytes' digest (version 1) are still read and checked.
    @Test func version1ObjectsAreStillRead() throws {
        let repo = MemoryRepository()
        let data = PipelineTests.content(10_000)
        let d = try Pipeline().store(repo, key: "old", bytes: data, options: .createOnly)
        repo.tamper("old") { b in
            b.removeLast(ObjectFormat.trailerLength)
            var t: [UInt8] = [0x5E, 0x2A, 0x4D, 0x18, UInt8(ObjectFormat.payloadLengthV1), 0, 0, 0] + ObjectFormat.tagV1
            t += (0..<8).map { UInt8((UInt64(d.size) >> (8 * UInt64($0))) & 0xff) }
            b += t + Hex.decode(d.sha256)!
        }
        var back = [UInt8]()
        try Pipeline().load(repo, key: "old") { back += $0 }
        #expect(back == data)
        repo.tamper("old") { $0[$0.count - 1] ^= 1 }
        #expect(throws: CairnError.self) { try Pipeline().load(repo, key: "old") { _ in } }
    }
}
