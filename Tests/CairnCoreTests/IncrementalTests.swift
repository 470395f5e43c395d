import CCRC32C
import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

// Unit tests for Sources/CairnCore/Incremental: which files are kept at block level, the block entry format, the
// PostgreSQL manifest's file list, and a chain of a full and two incrementals put together again in one pass.

/// An 8 KiB page with `lsn` in its header and `fill` everywhere else.
private func page(lsn: UInt64, fill: UInt8) -> [UInt8] {
    var p = [UInt8](repeating: fill, count: RelationBlocks.blockSize)
    withUnsafeBytes(of: UInt32(lsn >> 32)) { for i in 0..<4 { p[i] = $0[i] } }
    withUnsafeBytes(of: UInt32(lsn & 0xffff_ffff)) { for i in 0..<4 { p[4 + i] = $0[i] } }
    return p
}

private func write(_ bytes: [UInt8], _ path: String) throws {
    try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// One backup of the test's chain: the bundles a ``FileCopier`` wrote and its PostgreSQL manifest's file list.
private struct Taken {
    var objects: [BackupManifest.Object]
    var files: PGManifestFiles
    var copied: [FileCopier.Copied]
    var storedBytes: Int64 { objects.reduce(0) { $0 + $1.digest.size } }
}

private func take(
    _ root: String, id: String, parent: IncrementalParent?, repo: any Repository, pipeline: Pipeline
) throws -> Taken {
    let copier = FileCopier(
        repo: repo, pipeline: pipeline, backupId: id, archive: "base", bundleSize: 64 << 10, lanes: 2,
        parent: parent, onBytes: { _ in })
    try copier.copy(try DataDirectory.scan(dataDirectory: root))
    let text = PGManifestText.build(
        files: copier.copied.sorted { $0.path < $1.path }, timeline: 1, start: LSN(0x28), stop: LSN(0x100))
    return Taken(objects: copier.orderedObjects, files: try PGManifestFiles.parse(text), copied: copier.copied)
}

/// A source folder and a restore folder beside it (removed by ``cleanUp()``), the in-memory repository and a pipeline.
private struct Folders {
    let root: String
    var out: String { root + "-restored" }
    let repo = MemoryRepository()
    let pipeline = Pipeline(level: 1)

    init(_ name: String) { root = NSTemporaryDirectory() + "cairn-\(name)-\(UUID().uuidString)" }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: root)
        try? FileManager.default.removeItem(atPath: out)
    }
}

private func digests(_ root: String) throws -> String {
    try Run.shell("cd \(root) && find . -type f -print0 | sort -z | xargs -0 sha256sum").stdout
}

@Suite struct IncrementalTests {
    @Test(arguments: [
        ("base/5/16384", true), ("base/5/16384.12", true), ("global/1262", true),
        ("pg_tblspc/16999/PG_15_202209061/5/16400", true), ("pg_tblspc/16999/PG_18_202506291/5/16400.1", true),
        ("base/5/16384_vm", false), ("base/5/16384_fsm", false), ("base/5/16384_init", false),
        ("base/5/16384.x", false),
        ("global/pg_control", false), ("global/pg_filenode.map", false), ("base/5/PG_VERSION", false),
        ("pg_xact/0000", false), ("PG_VERSION", false), ("base/5/pg_internal.init", false), ("base/x/16384", false)
    ])
    func relationMainForksAreKeptAtBlockLevel(path: String, main: Bool) {
        #expect(RelationBlocks.isMainFork(path) == main)
    }

    @Test func aPageIsKeptWhenChangedNewOrWithoutAnLSN() {
        let old = page(lsn: 0x1_0000_0100, fill: 1)
        let new = page(lsn: 0x2_0000_0000, fill: 1)
        let threshold = LSN(0x1_8000_0000)
        old.withUnsafeBytes { #expect(RelationBlocks.pageLSN($0) == 0x1_0000_0100) }
        old.withUnsafeBytes {
            #expect(!RelationBlocks.mustKeep(page: $0, block: 3, threshold: threshold, parentBlocks: 10))
        }
        old.withUnsafeBytes {
            #expect(
                RelationBlocks.mustKeep(page: $0, block: 10, threshold: threshold, parentBlocks: 10),
                "past the parent's length")
        }
        new.withUnsafeBytes {
            #expect(RelationBlocks.mustKeep(page: $0, block: 3, threshold: threshold, parentBlocks: 10))
        }
        page(lsn: 0, fill: 0).withUnsafeBytes {
            #expect(RelationBlocks.mustKeep(page: $0, block: 3, threshold: threshold, parentBlocks: 10))
        }
    }

    @Test func aBlockEntryHeaderRoundTripsAndDamageIsRefused() throws {
        let d = BlockDelta(fileSize: 1 << 30, blocks: [0, 7, 131_071])
        let header = d.encodeHeader()
        #expect(header.count == 24 + 12)
        #expect(
            try BlockDelta.decodeHeader(Array(header.prefix(30)), entrySize: d.entrySize) == nil,
            "too short to tell yet")
        let decoded = try #require(try BlockDelta.decodeHeader(header + [1, 2, 3], entrySize: d.entrySize))
        #expect(decoded.delta == d && decoded.headerSize == 36)
        var badMagic = header
        badMagic[0] ^= 1
        #expect(throws: CairnError.self) { try BlockDelta.decodeHeader(badMagic, entrySize: d.entrySize) }
        #expect(throws: CairnError.self) { try BlockDelta.decodeHeader(header, entrySize: d.entrySize + 1) }
        let unordered = BlockDelta(fileSize: 1 << 20, blocks: [5, 4])
        #expect(throws: CairnError.self) {
            try BlockDelta.decodeHeader(unordered.encodeHeader(), entrySize: unordered.entrySize)
        }
    }

    @Test func theManifestsFileListReadsBackWithAndWithoutChecksums() throws {
        let files = [
            FileCopier.Copied(path: "PG_VERSION", size: 3, mtime: 0, crc32c: 0xE306_9283),
            FileCopier.Copied(path: "base/5/16384", size: 16384, mtime: 0, crc32c: nil)
        ]
        let text = PGManifestText.build(files: files, timeline: 1, start: LSN(0x28), stop: LSN(0x100))
        #expect(
            !String(decoding: text, as: UTF8.self).contains(
                "\"Path\": \"base/5/16384\", \"Size\": 16384, \"Last-Modified\": \"1970-01-01 00:00:00 GMT\", \"Checksum"
            ))
        let list = try PGManifestFiles.parse(text)
        #expect(
            list.files == [
                "PG_VERSION": .init(size: 3, crc32c: 0xE306_9283), "base/5/16384": .init(size: 16384, crc32c: nil)
            ])
        #expect(throws: CairnError.self) { try PGManifestFiles.parse(Array("{\"Files\": 3}".utf8)) }
    }

    @Test func eachFileIsStoredTheCheapestSafeWay() {
        let parent = IncrementalParent(
            id: "P", threshold: LSN(0x100),
            files: PGManifestFiles(files: [
                "base/5/16384": .init(size: 3 * 8192, crc32c: nil), "PG_VERSION": .init(size: 3, crc32c: 7),
                "base/5/16384_vm": .init(size: 8192, crc32c: 9), "global/pg_control": .init(size: 8192, crc32c: 1)
            ]))
        #expect(parent.copy(path: "base/5/16384", size: 5 * 8192) == .blocks(parentBlocks: 3))
        #expect(parent.copy(path: "base/5/16384", size: 5 * 8192 + 100) == .whole, "a torn length is stored whole")
        #expect(parent.copy(path: "base/5/99999", size: 8192) == .whole, "new since the parent")
        #expect(parent.copy(path: "PG_VERSION", size: 3) == .unlessUnchanged(crc32c: 7))
        #expect(parent.copy(path: "PG_VERSION", size: 4) == .whole)
        #expect(parent.copy(path: "base/5/16384_vm", size: 8192) == .unlessUnchanged(crc32c: 9))
        #expect(parent.copy(path: "global/pg_control", size: 8192) == .whole, "pg_control is always copied")
    }

    /// A full and two incrementals of a folder shaped like a data directory: a relation changed in place,
    /// extended, truncated, dropped and created (with old page LSNs, as CREATE DATABASE's file copy leaves them);
    /// small files changed and unchanged. Restored newest first, the folder is the one the last backup saw.
    /// `chunk`: the size of the pieces the archives are fed in (0: as the pipeline delivers them), so blocks and
    /// block-entry headers also arrive split across pieces.
    @Test(arguments: [0, 1000, 8191, 8193])
    func aChainRestoresTheNewestStateInOnePass(chunk: Int) throws {
        let folders = Folders("incr")
        defer { folders.cleanUp() }
        let (root, out, repo, pipeline) = (folders.root, folders.out, folders.repo, folders.pipeline)
        let rel = root + "/base/5/16384"
        try write((0..<4).flatMap { page(lsn: 0x100, fill: UInt8($0)) }, rel)
        try write((0..<2).flatMap { page(lsn: 0x100, fill: 50 + UInt8($0)) }, root + "/base/5/16385")
        try write(page(lsn: 0x100, fill: 60), root + "/base/5/16386")
        try write([UInt8](repeating: 9, count: 8192), root + "/base/5/16384_vm")
        try write(Array("15\n".utf8), root + "/PG_VERSION")
        let big = root + "/base/5/16390"  // more changed blocks than one entry holds
        try write((0..<300).flatMap { page(lsn: 0x100, fill: UInt8($0 % 250)) }, big)
        let full = try take(root, id: "F", parent: nil, repo: repo, pipeline: pipeline)

        // Changes since the full (which started at 0x200).
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rel)))
        bytes.replaceSubrange((2 * 8192)..<(3 * 8192), with: page(lsn: 0x300, fill: 200))
        bytes += page(lsn: 0x300, fill: 201)
        try write(bytes, rel)
        try write(page(lsn: 0x100, fill: 50), root + "/base/5/16385")  // truncated by VACUUM: no new LSN
        try FileManager.default.removeItem(atPath: root + "/base/5/16386")
        try write(page(lsn: 0x50, fill: 70), root + "/base/5/16387")  // new file, old LSN
        try write([UInt8](repeating: 10, count: 8192), root + "/base/5/16384_vm")
        try write((0..<300).flatMap { page(lsn: 0x300 + UInt64($0), fill: UInt8(($0 + 7) % 250)) }, big)
        let i1 = try take(
            root, id: "I1", parent: IncrementalParent(id: "F", threshold: LSN(0x200), files: full.files), repo: repo,
            pipeline: pipeline)
        #expect(i1.files.files["base/5/16384"] == .init(size: 5 * 8192, crc32c: nil))
        #expect(
            i1.files.files["PG_VERSION"]?.crc32c == full.files.files["PG_VERSION"]?.crc32c,
            "unchanged: listed with the parent's checksum")
        #expect(i1.files.files["base/5/16386"] == nil)
        #expect(i1.storedBytes < full.storedBytes)

        // Changes since the first incremental (which started at 0x400).
        bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rel)))
        bytes.replaceSubrange(0..<8192, with: page(lsn: 0x500, fill: 100))
        try write(bytes, rel)
        let i2 = try take(
            root, id: "I2", parent: IncrementalParent(id: "I1", threshold: LSN(0x400), files: i1.files), repo: repo,
            pipeline: pipeline)

        func restore(_ chain: [Taken]) throws {
            try? FileManager.default.removeItem(atPath: out)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let files = ChainFiles(final: chain.last!.files, archives: [("base", nil)])
            for (i, b) in chain.reversed().enumerated() {
                for o in b.objects {
                    let x = TarExtractor(root: out, chain: (files, "base", i == 0))
                    try pipeline.load(repo, key: o.key, expected: o.digest) { data in
                        let step = chunk > 0 ? chunk : max(data.count, 1)
                        for at in stride(from: 0, to: data.count, by: step) {
                            try x.feed(UnsafeRawBufferPointer(rebasing: data[at..<min(at + step, data.count)]))
                        }
                    }
                    try x.finish()
                }
            }
            try files.finish { out + "/" + $0 }
        }
        try restore([full, i1, i2])
        #expect(try digests(out) == (try digests(root)))
        try restore([full, i1])
        #expect(
            try [UInt8](Data(contentsOf: URL(fileURLWithPath: out + "/base/5/16384"))).prefix(8192)
                == page(lsn: 0x100, fill: 0)[...])

        // Without the full, the blocks nobody changed are nowhere: the restore says which.
        #expect(throws: CairnError.self) { try restore([i1, i2]) }
        do { try restore([i1, i2]) } catch let e as CairnError {
            // PG_VERSION (unchanged since the full) is the first file the missing full held.
            #expect(e.message == "the backup chain is incomplete: no backup holds PG_VERSION", "\(e.message)")
        }
    }

    @Test func theWalSummariesNameWhatAnIncrementalReads() {
        let c = ChangedBlocks()
        c.add(tablespace: 1663, database: 5, node: 16384, block: 3, isLimit: false)
        c.add(tablespace: 1663, database: 5, node: 16384, block: 131_072 + 9, isLimit: false)
        c.add(tablespace: 1663, database: 5, node: 16385, block: 2, isLimit: true)
        c.add(tablespace: 1663, database: 7, node: 0, block: 0, isLimit: true)  // database 7 created since
        c.add(tablespace: 1664, database: 0, node: 1262, block: 0, isLimit: false)
        let bs = Int64(RelationBlocks.blockSize)
        #expect(
            c.selection(path: "base/5/16384", size: 10 * bs, parentBlocks: 8) == .blocks([3, 8, 9]),
            "changed, then past the parent's length")
        #expect(
            c.selection(path: "base/5/16384.1", size: 10 * bs, parentBlocks: 10) == .blocks([9]),
            "absolute block numbers across segments")
        #expect(
            c.selection(path: "base/5/16385", size: 4 * bs, parentBlocks: 6) == .blocks([2, 3]),
            "truncated to 2 and grown again")
        #expect(
            c.selection(path: "base/5/16385.1", size: 4 * bs, parentBlocks: 6) == .whole, "truncated below this segment"
        )
        #expect(c.selection(path: "base/7/16400", size: 4 * bs, parentBlocks: 4) == .whole, "a database created since")
        #expect(c.selection(path: "global/1262", size: 2 * bs, parentBlocks: 2) == .blocks([0]))
        #expect(c.selection(path: "base/5/99999", size: 2 * bs, parentBlocks: 2) == .blocks([]), "unchanged")
        #expect(c.selection(path: "base/5/16384_vm", size: bs, parentBlocks: 1) == nil)
        // The summaries must cover the whole range without a hole.
        #expect(ChangedBlocks.covers([(LSN(0x10), LSN(0x50)), (LSN(0x50), LSN(0x90))], from: LSN(0x20), to: LSN(0x80)))
        #expect(!ChangedBlocks.covers([(LSN(0x10), LSN(0x50)), (LSN(0x60), LSN(0x90))], from: LSN(0x20), to: LSN(0x80)))
        #expect(!ChangedBlocks.covers([(LSN(0x30), LSN(0x90))], from: LSN(0x20), to: LSN(0x80)))
        #expect(!ChangedBlocks.covers([(LSN(0x10), LSN(0x70))], from: LSN(0x20), to: LSN(0x80)))
        #expect(!ChangedBlocks.covers([], from: LSN(0x20), to: LSN(0x80)))
    }
}

/// A delta restore with the in-memory repository: each block compared with the file on disk, only differing ones
/// written, sizes cut or extended, stray files and folders removed, the server's logs kept.
@Suite struct DeltaLayoutTests {
    /// Lays out `chain` onto `out` as `cairn restore --delta` does (without the repository's catalog).
    private func deltaRestore(
        _ chain: [Taken], onto out: String, repo: any Repository, pipeline: Pipeline
    ) throws -> DeltaSummary {
        let tally = DeltaTally()
        let files = ChainFiles(final: chain.last!.files, archives: [("base", nil)])
        for (i, b) in chain.reversed().enumerated() {
            for o in b.objects {
                let x = TarExtractor(root: out, chain: (files, "base", i == 0), delta: tally)
                try pipeline.load(repo, key: o.key, expected: o.digest) { try x.feed($0) }
                try x.finish()
            }
        }
        try files.finish(resized: { tally.resized($0) }) { out + "/" + $0 }
        try RestoreOperation.sweep([("base", nil)], final: files.final, roots: ["base": out], tally: tally)
        return tally.summary(files: files.final.files.count)
    }

    @Test(arguments: [false, true])
    func onlyWhatDiffersIsWrittenAndStrayFilesGo(chain: Bool) throws {
        let folders = Folders("delta")
        defer { folders.cleanUp() }
        let (root, out, repo, pipeline) = (folders.root, folders.out, folders.repo, folders.pipeline)
        let rel = root + "/base/5/16384"
        try write((0..<4).flatMap { page(lsn: 0x100, fill: UInt8($0)) }, rel)
        try write([UInt8](repeating: 9, count: 8192), root + "/base/5/16384_vm")
        try write(Array("15\n".utf8), root + "/PG_VERSION")
        var backups = [try take(root, id: "F", parent: nil, repo: repo, pipeline: pipeline)]
        if chain {
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rel)))
            bytes.replaceSubrange((2 * 8192)..<(3 * 8192), with: page(lsn: 0x300, fill: 200))
            try write(bytes, rel)
            backups.append(
                try take(
                    root, id: "I1", parent: IncrementalParent(id: "F", threshold: LSN(0x200), files: backups[0].files),
                    repo: repo, pipeline: pipeline))
        }

        // Onto an empty folder, a delta restore is a full one.
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let first = try deltaRestore(backups, onto: out, repo: repo, pipeline: pipeline)
        #expect(try digests(out) == (try digests(root)))
        #expect(first.filesCompared == 3 && first.filesRewritten == 3 && first.filesUnchanged == 0)
        // (With a chain, the full's blocks below the incremental's block 2 are read back as holes first.)
        #expect(first.bytesCompared == (chain ? 2 * 8192 : 0), "\(first)")

        // One block changed in place (same size), the map grown by a block, strays, a log and stale WAL.
        let restoredRel = out + "/base/5/16384"
        let fd = open(restoredRel, O_WRONLY)
        _ = page(lsn: 0x900, fill: 77).withUnsafeBytes { pwrite(fd, $0.baseAddress!, 8192, 8192) }
        close(fd)
        try write([UInt8](repeating: 9, count: 2 * 8192), out + "/base/5/16384_vm")
        try write([1, 2, 3], out + "/base/5/99999")
        try write([4], out + "/junk/deeper/file")
        try write([5], out + "/pg_wal/000000020000000000000003")
        try write(Array("a server log\n".utf8), out + "/log/postgresql.log")

        let second = try deltaRestore(backups, onto: out, repo: repo, pipeline: pipeline)
        #expect(second.bytesRewritten == 8192, "only the damaged block: \(second)")
        #expect(second.filesRewritten == 2 && second.filesUnchanged == 1, "\(second)")
        #expect(second.filesRemoved == 3, "\(second)")
        #expect(second.bytesCompared == 5 * 8192 + 3, "every block of every file on disk was read: \(second)")
        #expect(FileManager.default.fileExists(atPath: out + "/log/postgresql.log"), "the server's logs are kept")
        for gone in ["/junk", "/pg_wal", "/base/5/99999"] {
            #expect(!FileManager.default.fileExists(atPath: out + gone), "\(gone)")
        }
        try FileManager.default.removeItem(atPath: out + "/log")
        #expect(try digests(out) == (try digests(root)))

        // Nothing left to do: everything compared, nothing written.
        let third = try deltaRestore(backups, onto: out, repo: repo, pipeline: pipeline)
        #expect(
            third.bytesRewritten == 0 && third.filesRewritten == 0 && third.filesRemoved == 0
                && third.filesUnchanged == 3)

        // A file with another hard link (as pg_upgrade --link leaves them) is written anew, not through the link.
        let shared = folders.root + "-link"
        defer { unlink(shared) }
        #expect(link(restoredRel, shared) == 0)
        // truncates and writes the inode
        try write(page(lsn: 0x900, fill: 99) + [UInt8](repeating: 1, count: 3 * 8192), shared)
        let other = try [UInt8](Data(contentsOf: URL(fileURLWithPath: shared)))
        var st = stat()
        #expect(lstat(restoredRel, &st) == 0 && st.st_nlink == 2, "still one inode with two names")
        _ = try deltaRestore(backups, onto: out, repo: repo, pipeline: pipeline)
        #expect(try digests(out) == (try digests(root)))
        #expect(
            try [UInt8](Data(contentsOf: URL(fileURLWithPath: shared))) == other, "the other link's file is untouched")
    }

    /// A delta restore reads a whole file's blocks ahead in windows (``BlockPlacer/readWindow``): damage past the
    /// first window, in the last block, and a file cut short on disk are all found and only they are written.
    @Test func damageAnywhereInALargeFileIsFound() throws {
        let folders = Folders("delta-large")
        defer { folders.cleanUp() }
        let (root, out, repo, pipeline) = (folders.root, folders.out, folders.repo, folders.pipeline)
        let blocks = 2 * BlockPlacer.readWindow / 8192 + 10
        try write((0..<blocks).flatMap { page(lsn: 0x100, fill: UInt8($0 % 250)) }, root + "/base/5/16384")
        try write((0..<blocks).flatMap { page(lsn: 0x100, fill: UInt8($0 % 7)) }, root + "/base/5/16385")
        let backups = [try take(root, id: "F", parent: nil, repo: repo, pipeline: pipeline)]
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        _ = try deltaRestore(backups, onto: out, repo: repo, pipeline: pipeline)

        let fd = open(out + "/base/5/16384", O_WRONLY)
        for b in [130, blocks - 1] {
            _ = page(lsn: 0x900, fill: 77).withUnsafeBytes { pwrite(fd, $0.baseAddress!, 8192, off_t(b * 8192)) }
        }
        close(fd)
        #expect(truncate(out + "/base/5/16385", off_t((blocks - 3) * 8192)) == 0)

        let r = try deltaRestore(backups, onto: out, repo: repo, pipeline: pipeline)
        #expect(r.bytesRewritten == 5 * 8192, "two damaged blocks and three missing ones: \(r)")
        #expect(r.bytesCompared == Int64(2 * blocks - 3) * 8192, "\(r)")
        #expect(try digests(out) == (try digests(root)))
    }

    @Test func theSystemIdentifierOfADataDirectoryIsChecked() throws {
        let dir = NSTemporaryDirectory() + "cairn-delta-id-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(RestoreOperation.controlFileSystemIdentifier(dir) == nil)
        try write([1], dir + "/somefile")
        var id = UInt64(7_300_000_000_000_000_001)
        try write(
            withUnsafeBytes(of: &id) { Array($0) } + [UInt8](repeating: 0, count: 100), dir + "/global/pg_control")
        #expect(RestoreOperation.controlFileSystemIdentifier(dir) == id)
    }

    @Test func aStandbyHasNoTargetAndFollowsTheLatestTimeline() {
        let plan = [
            RecoveryPlan.Setting(name: "restore_command", value: "cairn wal-fetch %f %p"),
            .init(name: "recovery_target_time", value: "2026-01-01"),
            .init(name: "recovery_target_action", value: "promote"),
            .init(name: "recovery_target_timeline", value: "3")
        ]
        let settings = RestoreOperation.standbySettings(plan, primaryConninfo: "host=p user=r password=x")
        #expect(settings.map(\.name) == ["restore_command", "primary_conninfo", "recovery_target_timeline"])
        #expect(settings.last?.value == "latest")
        let text = RestoreOperation.rewriteAutoConf(
            "primary_conninfo = 'host=old'\nwork_mem = '8MB'\n", header: "# h", settings: settings,
            archiveOff: false)
        #expect(
            text.contains("# removed by cairn restore: primary_conninfo = 'host=old'")
                && text.contains("\nwork_mem = '8MB'\n"))
    }
}

extension RestoreOperation.DeltaBundleCheck {
    /// True when the bundle is not fetched at all.
    fileprivate func unchanged(_ contents: BackupManifest.BundleContents) throws -> Bool {
        if case .skip = try plan(contents) { return true }
        return false
    }
}

/// ``RestoreOperation/DeltaBundleCheck``: whether a delta restore may leave a bundle unfetched.
@Suite struct DeltaBundleCheckTests {
    private func check(_ files: ChainFiles, out: String, newest: Bool = true) -> RestoreOperation.DeltaBundleCheck {
        RestoreOperation.DeltaBundleCheck(root: out, archive: "base", files: files, newest: newest, tally: DeltaTally())
    }

    @Test func aBundleIsSkippedOnlyWhenEveryFileIsOnDiskByContent() throws {
        let folders = Folders("delta-skip")
        defer { folders.cleanUp() }
        let (root, out) = (folders.root, folders.out)
        try write((0..<4).flatMap { page(lsn: 0x100, fill: UInt8($0)) }, root + "/base/5/16384")
        try write(Array("15\n".utf8), root + "/PG_VERSION")
        let full = try take(root, id: "F", parent: nil, repo: folders.repo, pipeline: folders.pipeline)
        #expect(full.objects.allSatisfy { $0.contents != nil })
        let contents = try #require(
            full.objects.compactMap(\.contents).first { c in c.files.contains { $0.path.hasSuffix("base/5/16384") } })
        #expect(contents.files.allSatisfy { $0.xxh128?.count == 32 }, "every whole file has its digest")
        // The folder is in whichever bundle its lane wrote first (two lanes: not always the relation's).
        #expect(full.objects.compactMap(\.contents).contains { $0.directories.contains { $0.hasSuffix("base/5") } })
        try Run.shell("cp -a \(root) \(out)")
        let final = ChainFiles(final: full.files, archives: [("base", nil)])
        #expect(try check(final, out: out).unchanged(contents), "an exact copy needs nothing fetched")
        #expect(final.standing("base/5/16384") == .complete)

        // One byte changed, size and time kept: only the content tells, and it does.
        try Run.shell(
            "touch -r \(out)/base/5/16384 /tmp/t.$$ && printf 'x' | dd of=\(out)/base/5/16384 bs=1 seek=9000 conv=notrunc status=none && touch -r /tmp/t.$$ \(out)/base/5/16384; rm -f /tmp/t.$$"
        )
        let fresh = { ChainFiles(final: full.files, archives: [("base", nil)]) }
        let damaged = fresh()
        #expect(try !check(damaged, out: out).unchanged(contents))
        #expect(damaged.standing("base/5/16384") == .untouched, "nothing is marked when the bundle is fetched")
        try Run.shell("cp -a \(root)/base/5/16384 \(out)/base/5/16384")
        // A missing folder, a link where the file was, a bundle with a link entry: fetched.
        try FileManager.default.removeItem(atPath: out + "/base/5")
        #expect(try !check(fresh(), out: out).unchanged(contents))
        let relation = out + "/base/5/16384"
        try Run.shell("cp -a \(root)/base \(out)/ && mv \(relation) \(relation).x && ln -s 16384.x \(relation)")
        #expect(try !check(fresh(), out: out).unchanged(contents))
        try Run.shell("rm \(relation) && mv \(relation).x \(relation)")
        var withLink = contents
        withLink.others = 1
        #expect(try !check(fresh(), out: out).unchanged(withLink))
        #expect(try check(fresh(), out: out).unchanged(contents))
        // Without recorded digests (older backups, the stream method) a bundle is always fetched.
        var unknown = contents
        for i in unknown.files.indices { unknown.files[i].xxh128 = nil }
        #expect(try !check(fresh(), out: out).unchanged(unknown))
        // A backup made before XXH3-128 recorded SHA-256: still compared by content.
        var older = unknown
        for i in older.files.indices {
            let sum = try Run.shell("cd \(out) && sha256sum \(older.files[i].path)").stdout
            older.files[i].sha256 = String(sum.prefix(64))
        }
        #expect(try check(fresh(), out: out).unchanged(older))
        older.files[0].sha256 = String(repeating: "0", count: 64)
        #expect(try !check(fresh(), out: out).unchanged(older))
    }

    @Test func inAChainOnlyTheFinalContentCounts() throws {
        let folders = Folders("delta-skip-chain")
        defer { folders.cleanUp() }
        let (root, out) = (folders.root, folders.out)
        let rel = root + "/base/5/16384"
        try write((0..<4).flatMap { page(lsn: 0x100, fill: UInt8($0)) }, rel)
        let full = try take(root, id: "F", parent: nil, repo: folders.repo, pipeline: folders.pipeline)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rel)))
        bytes.replaceSubrange((2 * 8192)..<(3 * 8192), with: page(lsn: 0x300, fill: 200))
        try write(bytes, rel)
        let incr = try take(
            root, id: "I1", parent: IncrementalParent(id: "F", threshold: LSN(0x200), files: full.files),
            repo: folders.repo, pipeline: folders.pipeline)
        try Run.shell("cp -a \(root) \(out)")
        let files = ChainFiles(final: incr.files, archives: [("base", nil)])
        // The incremental holds the relation as changed blocks: its bundle is fetched, and then the full's bundle
        // (with the relation's older whole content) is needed for the other blocks.
        let newest = try #require(incr.objects.compactMap(\.contents).first { $0.files.contains { $0.blocks == true } })
        #expect(try !check(files, out: out).unchanged(newest))
        _ = files.decide(archive: "base", path: "base/5/16384", delta: true)  // the incremental's blocks, laid out
        #expect(files.standing("base/5/16384") == .partial)
        let older = try #require(
            full.objects.compactMap(\.contents).first { c in
                c.files.contains { $0.path.hasSuffix("base/5/16384") }
            })
        #expect(try !check(files, out: out, newest: false).unchanged(older), "a partly laid out file needs the bundle")
    }
}
