import CairnBase
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

/// Client-side encryption: the envelope format, tampering, the keyring and key rotation, on the in-memory driver.
@Suite struct EncryptionTests {
    static func master(_ seed: UInt8) -> MasterKey {
        try! MasterKey(bytes: [UInt8](repeating: seed, count: 32), source: "test key \(seed)")
    }

    static func encrypted(_ base: MemoryRepository = MemoryRepository(), key: UInt8 = 1) throws -> EncryptedRepository {
        let r = EncryptedRepository(base: base, master: master(key))
        _ = try r.createKeyringIfMissing(now: Date())
        return r
    }

    @Test(arguments: [
        0, 1, ObjectCipher.chunkSize - 1, ObjectCipher.chunkSize, ObjectCipher.chunkSize + 1,
        3 * ObjectCipher.chunkSize + 17
    ])
    func roundTripAndSizeMapping(size: Int) throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        let data = PipelineTests.content(size)
        let info = try repo.put("wal/x", data, options: .createOnly)
        #expect(info.size == Int64(size))
        let stored = try #require(try base.head("wal/x")).size
        #expect(stored == ObjectCipher.storedSize(ofPlain: Int64(size)))
        #expect(ObjectCipher.plainSize(ofStored: stored) == Int64(size))
        #expect(try repo.head("wal/x")?.size == Int64(size))
        #expect(try repo.list(prefix: "wal/").map(\.size) == [Int64(size)])
        #expect(try repo.getBytes("wal/x") == data)
        let raw = try base.getBytes("wal/x")
        #expect(raw.starts(with: Array("CAIRNENC".utf8)))
        if size > 64 {
            #expect(
                !raw.dropFirst(ObjectCipher.headerLength).starts(with: data.prefix(32)),
                "content is not stored in clear")
        }
    }

    /// The encryption layer says it decrypts through a capability, which a wrapper around it passes on (no type
    /// check): the pipeline reads ciphertext through it, and without it names the missing key.
    @Test(arguments: [3 * ObjectCipher.chunkSize + 1000, 3 * ObjectCipher.chunkSize])
    func rangesAreReadChunkByChunk(size: Int) throws {
        let base = MemoryRepository()
        let r = try Self.encrypted(base)
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        try r.put("backups/b/x", data, options: .createOnly)
        let c = Int64(ObjectCipher.chunkSize)
        let ranges: [(Int64, Int64?)] = [
            (0, 1), (c - 1, c + 1), (100, 2 * c + 5), (c, 2 * c), (2 * c, nil), (Int64(size) - 1, nil),
            (0, Int64(size)), (Int64(size), nil), (5, Int64(size) + 99)
        ]
        for (start, end) in ranges {
            var got: [UInt8] = []
            let info = try r.get("backups/b/x", range: ByteRange(start: start, end: end)) { got += $0 }
            let upper = Int(min(end ?? Int64(size), Int64(size)))
            #expect(
                got == Array(data[min(Int(start), size)..<max(upper, min(Int(start), size))]), "\(start)..<\(end ?? -1)"
            )
            #expect(info.size == Int64(size))
        }
        // Only the chunks a range needs are read and authenticated: damage elsewhere does not stop it, damage in them does.
        let header = ObjectCipher.headerLength
        base.tamper("backups/b/x") { $0[header + 2 * (ObjectCipher.chunkSize + ObjectCipher.tagLength) + 10] ^= 1 }
        var first: [UInt8] = []
        try r.get("backups/b/x", range: ByteRange(start: 10, end: c + 10)) { first += $0 }
        #expect(first == Array(data[10..<(Int(c) + 10)]))
        let e = try #require(throws: CairnError.self) {
            try r.get("backups/b/x", range: ByteRange(start: 2 * c, end: 2 * c + 1)) { _ in }
        }
        #expect(e.code == .dataCorrupt && e.message.contains("backups/b/x"))
    }

    @Test func decryptingIsACapability() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        #expect(!base.capabilities.contains(.decrypts))
        #expect(repo.capabilities == base.capabilities.union(.decrypts))
        let digest = try Pipeline().store(repo, key: "wal/x", bytes: Array("some WAL".utf8), options: .createOnly)
        #expect(try Pipeline().load(repo, key: "wal/x", expected: nil) { _ in }.size == digest.size)
        let withoutKey = #expect(throws: CairnError.self) {
            try Pipeline().load(base, key: "wal/x", expected: nil) { _ in }
        }
        #expect(withoutKey?.code == .keyMissing)
    }

    @Test func sizesThatNoObjectHasAreRejected() {
        #expect(ObjectCipher.plainSize(ofStored: 10) == nil)
        #expect(ObjectCipher.plainSize(ofStored: Int64(ObjectCipher.headerLength + 15)) == nil)
        #expect(ObjectCipher.plainSize(ofStored: Int64(ObjectCipher.headerLength + 16)) == 0)
    }

    @Test func plainObjectsStayPlainAndThePipelineComposes() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        try repo.put("locks/backup-full.json", Array("lock".utf8), options: .createOnly)
        #expect(try base.getBytes("locks/backup-full.json") == Array("lock".utf8))
        #expect(try base.getBytes(Keyring.key).starts(with: Array("{\"body\":".utf8)))
        let data = PipelineTests.content(1 << 20)
        let d = try Pipeline(level: 3).store(repo, key: "backups/b/x.tar.zst", bytes: data, options: .createOnly)
        #expect(
            d.storedSize == (try repo.head("backups/b/x.tar.zst")?.size),
            "catalog sizes match what the pipeline recorded")
        var back = [UInt8]()
        #expect(try Pipeline().load(repo, key: "backups/b/x.tar.zst", expected: d) { back.append(contentsOf: $0) } == d)
        #expect(back == data)
    }

    /// Every single-bit flip and every truncation of an encrypted object fails the read with `data.corrupt`.
    @Test func everyBitFlipAndTruncationIsDetected() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        let data = PipelineTests.content(300)
        try repo.put("wal/s", data, options: .createOnly)
        let original = try base.getBytes("wal/s")
        func readFails() -> Bool {
            do { _ = try repo.getBytes("wal/s"); return false } catch let e as CairnError {
                return e.code == .dataCorrupt
            } catch { return false }
        }
        var flips = 0, truncations = 0
        for bit in 0..<(original.count * 8) {
            base.tamper("wal/s") {
                $0 = original; $0[bit / 8] ^= UInt8(1 << (bit % 8))
            }
            #expect(readFails(), "bit \(bit) flipped went unnoticed")
            flips += 1
        }
        for length in 0..<original.count {
            base.tamper("wal/s") { $0 = Array(original.prefix(length)) }
            #expect(readFails(), "truncation to \(length) bytes went unnoticed")
            truncations += 1
        }
        base.tamper("wal/s") { $0 = original + [0] }
        #expect(readFails(), "an appended byte went unnoticed")
        base.tamper("wal/s") { $0 = original }
        #expect(try repo.getBytes("wal/s") == data)
        #expect(flips == original.count * 8 && truncations == original.count)
    }

    @Test func truncationAtAChunkBoundaryIsDetected() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        try repo.put("b", PipelineTests.content(2 * ObjectCipher.chunkSize + 5), options: .createOnly)
        base.tamper("b") { $0 = Array($0.prefix(ObjectCipher.headerLength + 2 * (ObjectCipher.chunkSize + 16))) }
        #expect(throws: CairnError.self) { _ = try repo.getBytes("b") }
    }

    @Test func anObjectMovedToAnotherNameDoesNotOpen() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        try repo.put("wal/00000001/A", Array("segment A".utf8), options: .createOnly)
        try repo.put("wal/00000001/B", Array("segment B".utf8), options: .createOnly)
        let a = try base.getBytes("wal/00000001/A")
        base.tamper("wal/00000001/B") { $0 = a }
        let e = try #require(throws: CairnError.self) { _ = try repo.getBytes("wal/00000001/B") }
        #expect(e.code == .dataCorrupt)
        #expect(e.message.contains("wal/00000001/B") && e.message.contains("another name"))
    }

    @Test func aPlainObjectInAnEncryptedRepositoryAndTheReverseAreRefused() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        try Pipeline().store(base, key: "wal/plain", bytes: [1, 2, 3], options: .createOnly)
        #expect(throws: CairnError.self) { try Pipeline().load(repo, key: "wal/plain") { _ in } }
        try Pipeline().store(repo, key: "wal/enc", bytes: [1, 2, 3], options: .createOnly)
        let e = try #require(throws: CairnError.self) { try Pipeline().load(base, key: "wal/enc") { _ in } }
        #expect(e.code == .keyMissing)
    }

    @Test func aWrongMasterKeyIsNamedByIdNeverByValue() throws {
        let base = MemoryRepository()
        _ = try Self.encrypted(base, key: 1)
        let wrong = EncryptedRepository(base: base, master: Self.master(2))
        let e = try #require(throws: CairnError.self) { _ = try wrong.keyring() }
        #expect(e.code == .keyMismatch)
        #expect(e.message.contains(Self.master(2).id) && e.message.contains(Self.master(1).id))
        #expect(!e.message.contains(Data([UInt8](repeating: 2, count: 32)).base64EncodedString()))
    }

    @Test func masterKeysParseFromBase64AndHexOnly() throws {
        let bytes = MasterKey.generate()
        #expect(
            try MasterKey.parse(Data(bytes).base64EncodedString() + "\n", source: "t").id
                == MasterKey(bytes: bytes, source: "t").id)
        #expect(try MasterKey.parse(Hex.encode(bytes), source: "t").id == MasterKey(bytes: bytes, source: "t").id)
        for bad in ["", "short", Data(bytes.prefix(16)).base64EncodedString(), String(repeating: "z", count: 64)] {
            let e = try #require(throws: CairnError.self) { _ = try MasterKey.parse(bad, source: "t") }
            #expect(e.code == .configInvalid && e.hint != nil)
        }
    }

    @Test func rotationRewrapsWithoutTouchingDataAndTheOldKeyStopsWorking() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base, key: 1)
        let data = PipelineTests.content(200_000)
        try repo.put("backups/b/x", data, options: .createOnly)
        let stored = try base.getBytes("backups/b/x")
        let before = try repo.keyring().keyring

        let r = try KeyRotation.run(repo: base, old: Self.master(1), new: Self.master(2), now: Date())
        #expect(r.rewrapped == 1 && !r.resumed && r.currentDataKey != before.current)
        #expect(try base.getBytes("backups/b/x") == stored, "no data object is rewritten")
        let after = EncryptedRepository(base: base, master: Self.master(2))
        #expect(try after.getBytes("backups/b/x") == data)
        #expect(try after.keyring().keyring.keys.map(\.id) == before.keys.map(\.id) + [r.currentDataKey])
        try after.put("backups/c/y", [9, 9], options: .createOnly)
        #expect(
            Array(try base.getBytes("backups/c/y")[9..<17]) == Array(r.currentDataKey.utf8),
            "new objects use the fresh data key")
        let old = EncryptedRepository(base: base, master: Self.master(1))
        #expect(throws: CairnError.self) { _ = try old.getBytes("backups/b/x") }
        let same = try #require(throws: CairnError.self) {
            try KeyRotation.run(repo: base, old: Self.master(2), new: Self.master(2), now: Date())
        }
        #expect(same.code == .usage)
        let stranger = try #require(throws: CairnError.self) {
            try KeyRotation.run(repo: base, old: Self.master(7), new: Self.master(8), now: Date())
        }
        #expect(stranger.code == .keyMismatch)
    }

    /// A rotation interrupted after the first twin: both keys still open the repository, and rerunning it (or a
    /// rotation from the copy) keeps every data key, including one already used under the new key.
    @Test func anInterruptedRotationLosesNoDataKey() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base, key: 1)
        try repo.put("wal/a", [1], options: .createOnly)
        let oldCopy = try base.getBytes(Keyring.copyKey)
        _ = try KeyRotation.run(repo: base, old: Self.master(1), new: Self.master(2), now: Date())
        try base.put(Keyring.copyKey, oldCopy, options: .overwrite)  // as if killed between the twins
        let withNew = EncryptedRepository(base: base, master: Self.master(2))
        try withNew.put("wal/b", [2], options: .createOnly)  // written under the new data key
        #expect(
            try EncryptedRepository(base: base, master: Self.master(1)).getBytes("wal/a") == [1],
            "the old key still opens the copy")

        let r = try KeyRotation.run(repo: base, old: Self.master(1), new: Self.master(2), now: Date())
        #expect(r.resumed && r.rewrapped == 2)
        let done = EncryptedRepository(base: base, master: Self.master(2))
        #expect(try done.getBytes("wal/a") == [1])
        #expect(try done.getBytes("wal/b") == [2])
        #expect(try base.getBytes(Keyring.key) == base.getBytes(Keyring.copyKey))
    }

    /// The verify sample of issue #11 at the library level: one random bit flip and one random truncation in each
    /// of 120 objects of varied sizes, through the pipeline on an encrypted repository; every one is detected.
    @Test func aSampleOfObjectsWithOneFlipAndOneTruncationEach() throws {
        let base = MemoryRepository()
        let repo = try Self.encrypted(base)
        var rng = SeededGenerator(seed: 20261125)
        var detected = 0
        for i in 0..<120 {
            let key = "wal/00000001/\(i)"
            let d = try Pipeline().store(
                repo, key: key, bytes: PipelineTests.content(Int.random(in: 0...300_000, using: &rng)),
                options: .createOnly)
            let original = try base.getBytes(key)
            let bit = Int.random(in: 0..<(original.count * 8), using: &rng)
            for damage in [
                { (b: inout [UInt8]) in b[bit / 8] ^= UInt8(1 << (bit % 8)) },
                { (b: inout [UInt8]) in b = Array(b.prefix(Int.random(in: 0..<original.count, using: &rng))) }
            ] {
                base.tamper(key) {
                    $0 = original; damage(&$0)
                }
                do { try Pipeline().load(repo, key: key, expected: d) { _ in } } catch let e as CairnError
                    where e.code == .dataCorrupt
                { detected += 1 }
            }
        }
        #expect(detected == 240)
    }
}
