import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

// Unit tests for Sources/CairnCore/Catalog/FileFrames.swift and Sources/CairnCore/Restore/FrameRepair.swift: a
// large file is stored as frames, and a delta restore fetches only the frames that differ from the file on disk.

/// The in-memory repository, recording every ranged read and delivering it in pieces (for ``FrameRepairTests``).
final class RangeRecorder: Repository, @unchecked Sendable {
    let base = MemoryRepository()
    private let lock = NSLock()
    private var recorded: [(String, ByteRange)] = []
    var ranges: [(String, ByteRange)] { lock.withLock { recorded } }
    var location: String { base.location }
    var capabilities: RepositoryCapabilities { base.capabilities }
    func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        try base.put(key, bytes, options: options)
    }
    func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter {
        try base.makeWriter(key, options: options)
    }
    func get(_ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> ObjectInfo
    {
        guard let range else { return try base.get(key, range: nil, into: sink) }
        lock.withLock { recorded.append((key, range)) }
        // In 16 KiB pieces, as a network delivers them.
        return try base.get(key, range: range) { all in
            for at in stride(from: 0, to: all.count, by: 16 << 10) {
                try sink(UnsafeRawBufferPointer(rebasing: all[at..<min(at + (16 << 10), all.count)]))
            }
        }
    }
    func head(_ key: String) throws -> ObjectInfo? { try base.head(key) }
    func list(prefix: String) throws -> [ObjectInfo] { try base.list(prefix: prefix) }
    func delete(_ keys: [String]) throws { try base.delete(keys) }
}

@Suite struct FrameRepairTests {
    /// zstd's output buffer size: a frame fills it exactly (what caught a decoder that lost track of frame ends).
    static let frameSize: Int64 = 128 << 10
    static let blocks = 80  // 640 KiB: five frames

    let root = NSTemporaryDirectory() + "cairn-frames-\(UUID().uuidString)"
    var out: String { root + "-restored" }
    let repo = RangeRecorder()
    let pipeline = Pipeline(level: 1)

    /// A source folder with an 80-block relation and a small file, backed up with 128 KiB frames, and a copy of it.
    func backUpAndCopy(
        into store: (any Repository)? = nil
    ) throws -> (
        objects: [BackupManifest.Object], files: PGManifestFiles
    ) {
        try FileManager.default.createDirectory(atPath: root + "/base/5", withIntermediateDirectories: true)
        let relation = (0..<(Self.blocks * 8192)).map { UInt8(truncatingIfNeeded: $0 / 8192 * 31 + $0 % 251) }
        try Data(relation).write(to: URL(fileURLWithPath: root + "/base/5/16384"))
        try Data("15\n".utf8).write(to: URL(fileURLWithPath: root + "/PG_VERSION"))
        let copier = FileCopier(
            repo: store ?? repo, pipeline: pipeline, backupId: "F", archive: "base", bundleSize: 1 << 20, lanes: 1,
            frameSize: Self.frameSize, onBytes: { _ in })
        try copier.copy(try DataDirectory.scan(dataDirectory: root))
        let text = PGManifestText.build(
            files: copier.copied.sorted { $0.path < $1.path }, timeline: 1, start: LSN(0x28), stop: LSN(0x100))
        try Run.shell("cp -a \(root) \(out)")
        return (copier.orderedObjects, try PGManifestFiles.parse(text))
    }

    /// A delta restore of the backup onto `out`, bundle by bundle as a restore does.
    func delta(
        _ backup: (objects: [BackupManifest.Object], files: PGManifestFiles), from store: (any Repository)? = nil
    ) throws -> DeltaSummary {
        let store = store ?? repo
        let tally = DeltaTally()
        let files = ChainFiles(final: backup.files, archives: [("base", nil)])
        for o in backup.objects
        where try !RestoreOperation.deltaWithoutFetching(
            o, archive: "base", root: out, chain: (files, true), repo: store, tally: tally)
        {
            let x = TarExtractor(root: out, chain: (files, "base", true), delta: tally)
            try pipeline.load(store, key: o.key, expected: o.digest) { try x.feed($0) }
            try x.finish()
        }
        try files.finish(resized: { tally.resized($0) }) { out + "/" + $0 }
        return tally.summary(files: files.final.files.count)
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: root)
        try? FileManager.default.removeItem(atPath: out)
    }

    func digests(_ dir: String) throws -> String {
        try Run.shell("cd \(dir) && find . -type f -print0 | sort -z | xargs -0 sha256sum").stdout
    }

    @Test func aLargeFileIsStoredAsFramesThatDecodeOnTheirOwn() throws {
        defer { cleanUp() }
        let backup = try backUpAndCopy()
        let entries = backup.objects.compactMap(\.contents).flatMap(\.files)
        let relation = try #require(entries.first { $0.path.hasSuffix("base/5/16384") })
        let frames = try #require(relation.frames)
        #expect(relation.xxh128 == nil && frames.count == 5 && frames.isConsistent(fileSize: relation.size))
        #expect(entries.first { $0.path.hasSuffix("PG_VERSION") }?.xxh128?.count == 32, "a small file: one digest")
        // Each frame, read by its range alone, has its stored bytes' SHA-256 and decodes to its slice of the file.
        let bundle = try #require(backup.objects.first { $0.contents?.files.contains(relation) == true })
        let source = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/base/5/16384")))
        for k in 0..<frames.count {
            let r = frames.storedRange(k...k)
            var (stored, decoded): ([UInt8], [UInt8]) = ([], [])
            let d = try ZstdDecompressor()
            try repo.get(bundle.key, range: ByteRange(start: r.lowerBound, end: r.upperBound)) {
                stored += $0
                try d.decompress($0) { decoded += $0 }
            }
            let slice = frames.contentRange(k, fileSize: relation.size)
            #expect(d.atFrameBoundary && decoded == Array(source[Int(slice.lowerBound)..<Int(slice.upperBound)]))
            let other = k == 0 ? 1 : 0
            #expect(decoded.withUnsafeBytes { frames.contentMatches(k, $0) && !frames.contentMatches(other, $0) })
            #expect(stored.withUnsafeBytes { frames.storedMatches(k, $0) && !frames.storedMatches(other, $0) })
        }
    }

    @Test func theContentHashIsXXH3With128Bits() throws {
        #expect(ContentHash.of(UnsafeRawBufferPointer(start: nil, count: 0)) == "99aa06d3014798d86001c324468d497f")
        let text = Array("The quick brown fox jumps over the lazy dog".utf8)
        let streamed = try ContentHash()
        text.withUnsafeBytes {
            streamed.update(UnsafeRawBufferPointer(rebasing: $0[0..<10]))
            streamed.update(UnsafeRawBufferPointer(rebasing: $0[10...]))
        }
        #expect(streamed.finish() == text.withUnsafeBytes { ContentHash.of($0) })
        #expect(streamed.finish() == "99aa06d3014798d86001c324468d497f", "finish starts over")
    }

    @Test func onlyTheFramesThatDifferAreFetched() throws {
        defer { cleanUp() }
        let backup = try backUpAndCopy()
        let relation = out + "/base/5/16384"
        // One byte of block 20 (frame 1) changed with size and time kept, and the file cut to 66 blocks (frame 4).
        try Run.shell(
            "touch -r \(relation) /tmp/t.$$ && printf 'x' | dd of=\(relation) bs=1 seek=\(20 * 8192 + 100) conv=notrunc status=none && touch -r /tmp/t.$$ \(relation); rm -f /tmp/t.$$"
        )
        #expect(truncate(relation, off_t(66 * 8192)) == 0)
        let r = try delta(backup)
        #expect(r.framesFetched == 2 && r.bundlesFetched == 0, "\(r)")
        #expect(r.bytesRewritten == 15 * 8192, "one damaged block and fourteen missing ones: \(r)")
        // Two ranged reads, each of one frame's stored bytes.
        let frames = try #require(backup.objects.compactMap(\.contents).flatMap(\.files).compactMap(\.frames).first)
        #expect(
            repo.ranges.map(\.1) == [1, 4].map { ByteRange(start: frames.offsets[$0], end: frames.offsets[$0 + 1]) })
        #expect(try digests(out) == (try digests(root)))

        // Longer on disk than in the backup: every frame is right, the file is cut to its size.
        try Run.shell("head -c 5000 /dev/urandom >> \(relation)")
        let longer = try delta(backup)
        #expect(longer.framesFetched == 0 && longer.filesRewritten == 1 && longer.bytesRewritten == 0, "\(longer)")
        #expect(try digests(out) == (try digests(root)))
    }

    @Test func aDamagedFrameIsRefusedBeforeItIsWritten() throws {
        defer { cleanUp() }
        let backup = try backUpAndCopy()
        let relation = out + "/base/5/16384"
        try Run.shell("printf 'x' | dd of=\(relation) bs=1 seek=\(20 * 8192) conv=notrunc status=none")
        let damagedCopy = try digests(out)
        let bundle = try #require(backup.objects.first { $0.contents?.files.contains { $0.frames != nil } == true })
        let frames = try #require(bundle.contents?.files.compactMap(\.frames).first)
        // A byte in the middle of frame 1's stored bytes: the SHA-256 of its stored bytes refuses it before decoding.
        repo.base.tamper(bundle.key) { $0[Int((frames.offsets[1] + frames.offsets[2]) / 2)] ^= 0x40 }
        #expect {
            _ = try delta(backup)
        } throws: { e in
            let e = e as? CairnError
            return e?.code == .dataCorrupt && e?.message.contains(bundle.key) == true
                && e?.message.contains("frame 1 of base/5/16384 does not match the SHA-256") == true
        }
        #expect(try digests(out) == damagedCopy, "nothing of the damaged frame was written")
    }

    @Test func anEncryptedRepositoryServesFramesByRange() throws {
        defer { cleanUp() }
        let store = EncryptedRepository(base: repo, master: EncryptionTests.master(1))
        _ = try store.createKeyringIfMissing(now: Date())
        let backup = try backUpAndCopy(into: store)
        try Run.shell("printf 'x' | dd of=\(out)/base/5/16384 bs=1 seek=\(20 * 8192) conv=notrunc status=none")
        let r = try delta(backup, from: store)
        #expect(r.framesFetched == 1 && r.bundlesFetched == 0 && r.bytesRewritten == 8192, "\(r)")
        // Two ranged reads of the bundle: its encryption header, then only the chunks that hold frame 1.
        let reads = repo.ranges.filter { $0.0.hasPrefix("backups/") }.map(\.1)
        #expect(
            reads.count == 2 && reads.first == ByteRange(start: 0, end: Int64(ObjectCipher.headerLength)), "\(reads)")
        #expect(try digests(out) == (try digests(root)))

        // Without the master key, the frame is not taken for damaged: the key is missing.
        try Run.shell("printf 'x' | dd of=\(out)/base/5/16384 bs=1 seek=\(20 * 8192) conv=notrunc status=none")
        let e = try #require(throws: CairnError.self) { _ = try delta(backup, from: repo) }
        #expect(e.code == .keyMissing, "\(e.message)")
    }
}
