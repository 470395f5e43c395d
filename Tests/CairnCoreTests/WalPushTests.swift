import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

/// wal-push and wal-fetch on the in-memory repository with synthetic WAL files of every kind.
@Suite struct WalPushTests {
    static let sysid: UInt64 = 7_300_000_000_000_000_123
    let repo = MemoryRepository()
    let dir: String
    let info = RepositoryInfo(
        cluster: ClusterInfo(
            systemIdentifier: String(Self.sysid), versionNum: 150018,
            walSegmentSize: 1 << 20, dataDirectory: nil),
        created: Date(), cairnVersion: "test")

    init() throws {
        dir = try TestEnvironment.tempDirectory("walpush-unit")
        try repo.put(RepositoryInfo.key, try SealedDocument.seal(info))
    }

    /// A 1 MiB segment with a long page header for `sysid` (timeline 1, segment `number`) and some content.
    static func segment(sysid: UInt64 = sysid, magic: UInt16 = 0xD110, fill: UInt8 = 7, number: UInt64 = 0) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 1 << 20)
        withUnsafeBytes(of: magic.littleEndian) { b.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: UInt16(0x0002).littleEndian) { b.replaceSubrange(2..<4, with: $0) }
        withUnsafeBytes(of: UInt32(1).littleEndian) { b.replaceSubrange(4..<8, with: $0) }
        withUnsafeBytes(of: (number << 20).littleEndian) { b.replaceSubrange(8..<16, with: $0) }
        withUnsafeBytes(of: sysid.littleEndian) { b.replaceSubrange(24..<32, with: $0) }
        for i in stride(from: 4096, to: b.count, by: 3) { b[i] = fill &+ UInt8(truncatingIfNeeded: i) }
        return b
    }

    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    @Test func everyKindOfWalFileRoundTrips() throws {
        let files: [(String, [UInt8])] = [
            ("000000010000000000000003", Self.segment()),
            ("000000010000000000000004.partial", Self.segment(fill: 9)),
            ("00000002.history", Array("1\t0/4000000\tno recovery target specified\n".utf8)),
            ("000000010000000000000003.00000028.backup", Array("START WAL LOCATION: 0/3000028\n".utf8))
        ]
        for (name, bytes) in files {
            let r = try WalPush.run(repo: repo, pipeline: Pipeline(), path: try file(name, bytes))
            #expect(r.outcome == .stored, "\(name)")
            let out = dir + "/fetched-" + name
            _ = try WalFetch.run(repo: repo, pipeline: Pipeline(), name: name, dest: out)
            #expect(FileManager.default.contents(atPath: out) == Data(bytes), "\(name)")
        }
        #expect(try repo.head("wal/00000002/00000002.history.zst") != nil)
        #expect(try repo.head("wal/00000001/000000010000000000000004.partial.zst") != nil)
    }

    @Test func samePushTwiceIsAlreadyStoredAndDifferentIsAConflict() throws {
        let path = try file("000000010000000000000005", Self.segment())
        #expect(try WalPush.run(repo: repo, pipeline: Pipeline(), path: path).outcome == .stored)
        #expect(try WalPush.run(repo: repo, pipeline: Pipeline(level: 9), path: path).outcome == .alreadyStored)
        _ = try file("000000010000000000000005", Self.segment(fill: 1))
        let e = #expect(throws: CairnError.self) { try WalPush.run(repo: repo, pipeline: Pipeline(), path: path) }
        #expect(e?.code == .walConflict)
    }

    @Test func contentIsComparedNotHashed() throws {
        // WAL objects record no content digest (format 3): a second push compares the content itself.
        let name = "00000003.history"
        let text = Array("1\t0/4000000\tno recovery target specified\n".utf8)
        let path = try file(name, text)
        #expect(try WalPush.run(repo: repo, pipeline: Pipeline(), path: path).outcome == .stored)
        let object = try repo.getBytes("wal/00000003/00000003.history.zst")
        let trailer = try #require(ObjectFormat.parseTrailer(Array(object.suffix(ObjectFormat.trailerLength))))
        #expect(trailer.trailer.sha256 == nil && trailer.trailer.size == Int64(text.count))
        #expect(try WalPush.run(repo: repo, pipeline: Pipeline(), path: path).outcome == .alreadyStored)
        for other in [
            text + Array("2\t0/5000000\tbefore 2026-11-26\n".utf8), Array(text.dropLast(5)),
            text.map { $0 == 0x31 ? 0x32 : $0 }
        ] {
            _ = try file(name, other)
            let e = #expect(throws: CairnError.self) { try WalPush.run(repo: repo, pipeline: Pipeline(), path: path) }
            #expect(e?.code == .walConflict)
        }
        #expect(try repo.getBytes("wal/00000003/00000003.history.zst") == object)

        // A segment stored by an earlier version (streamed, with its content digest) is the same content.
        let seg = Self.segment(fill: 3)
        let older = try Pipeline().beginStore(
            repo, key: "wal/00000001/00000001000000000000000A.zst", options: .createOnly)
        try seg.withUnsafeBytes { try older.write($0) }
        _ = try older.finish()
        #expect(
            try WalPush.run(repo: repo, pipeline: Pipeline(), path: try file("00000001000000000000000A", seg)).outcome
                == .alreadyStored)
    }

    @Test func foreignSegmentsWrongSizesAndOtherVersionsAreRefused() throws {
        let foreign = try file("000000010000000000000006", Self.segment(sysid: 42))
        #expect(
            (#expect(throws: CairnError.self) { try WalPush.run(repo: repo, pipeline: Pipeline(), path: foreign) })?
                .code == .repoForeign)
        let short = try file("000000010000000000000007", Array(Self.segment().prefix(1000)))
        #expect(
            (#expect(throws: CairnError.self) { try WalPush.run(repo: repo, pipeline: Pipeline(), path: short) })?.code
                == .walInvalidName)
        let pg14 = try file("000000010000000000000008", Self.segment(magic: 0xD10D))
        #expect(
            (#expect(throws: CairnError.self) { try WalPush.run(repo: repo, pipeline: Pipeline(), path: pg14) })?.code
                == .pgVersion)
        let junk = try file("postmaster.pid", [1, 2, 3])
        #expect(
            (#expect(throws: CairnError.self) { try WalPush.run(repo: repo, pipeline: Pipeline(), path: junk) })?.code
                == .walInvalidName)
        #expect(try repo.list(prefix: "wal/").isEmpty)
    }

    @Test func anUninitialisedRepositoryIsRefused() throws {
        let empty = MemoryRepository()
        let path = try file("000000010000000000000009", Self.segment())
        #expect(
            (#expect(throws: CairnError.self) { try WalPush.run(repo: empty, pipeline: Pipeline(), path: path) })?.code
                == .repoUninitialized)
    }

    @Test func fetchingAMissingFileIsNotFoundAndADamagedOneIsCorrupt() throws {
        #expect(
            (#expect(throws: CairnError.self) {
                try WalFetch.run(repo: repo, pipeline: Pipeline(), name: "0000000100000000000000AA", dest: dir + "/x")
            })?.code == .walNotFound)
        let path = try file("00000001000000000000000A", Self.segment())
        _ = try WalPush.run(repo: repo, pipeline: Pipeline(), path: path)
        repo.tamper("wal/00000001/00000001000000000000000A.zst") { $0[$0.count / 2] ^= 1 }
        #expect(
            (#expect(throws: CairnError.self) {
                try WalFetch.run(repo: repo, pipeline: Pipeline(), name: "00000001000000000000000A", dest: dir + "/y")
            })?.code == .dataCorrupt)
        #expect(!FileManager.default.fileExists(atPath: dir + "/y"))
    }

    @Test func prefetchFillsTheSpoolUntilTheEndOfTheArchive() throws {
        for n in 0x10...0x14 {
            _ = try WalPush.run(
                repo: repo, pipeline: Pipeline(),
                path: try file(
                    String(format: "0000000100000000000000%02X", n), Self.segment(fill: UInt8(n), number: UInt64(n))))
        }
        let spool = dir + "/pg_wal/cairn-prefetch"
        try FileManager.default.createDirectory(atPath: dir + "/pg_wal", withIntermediateDirectories: true)
        let first = try #require(WALSegment(name: "000000010000000000000011", segmentSize: 1 << 20))
        let n = try WalFetch.prefetch(
            repo: repo, pipeline: Pipeline(), info: info, first: first, count: 10, spool: spool, parallelism: 3)
        #expect(n == 4)
        let spooled = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.count == 24 }.sorted()
        #expect(
            spooled == [
                "000000010000000000000011", "000000010000000000000012", "000000010000000000000013",
                "000000010000000000000014"
            ])
        // wal-fetch takes a spooled segment by renaming it.
        let r = try WalFetch.run(
            repo: repo, pipeline: Pipeline(), name: "000000010000000000000012", dest: dir + "/pg_wal/RECOVERYXLOG")
        #expect(r.outcome == .fromSpool)
        #expect(
            FileManager.default.contents(atPath: dir + "/pg_wal/RECOVERYXLOG")
                == Data(Self.segment(fill: 0x12, number: 0x12)))
        WalFetch.pruneSpool(spool, before: "000000010000000000000014")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.count == 24 } == [
                "000000010000000000000014"
            ])
        WalFetch.removeSpool(spool)
        #expect(!FileManager.default.fileExists(atPath: spool))
    }

    /// Spools segments 0x20…0x23, damages them in `damage` ways, and expects each to be fetched from the
    /// repository instead, equal to its stored copy.
    @Test func aDamagedSpooledSegmentIsNotServed() throws {
        for n in 0x20...0x25 {
            _ = try WalPush.run(
                repo: repo, pipeline: Pipeline(),
                path: try file(
                    String(format: "0000000100000000000000%02X", n), Self.segment(fill: UInt8(n), number: UInt64(n))))
        }
        let spool = dir + "/pg_wal/cairn-prefetch"
        try FileManager.default.createDirectory(atPath: dir + "/pg_wal", withIntermediateDirectories: true)
        let first = try #require(WALSegment(name: "000000010000000000000020", segmentSize: 1 << 20))
        #expect(
            try WalFetch.prefetch(
                repo: repo, pipeline: Pipeline(), info: info, first: first, count: 6, spool: spool, parallelism: 2) == 6
        )
        let damage: [(String, (inout [UInt8]) -> Void)] = [
            ("zeros of the right size", { $0 = [UInt8](repeating: 0, count: $0.count) }),
            ("one flipped byte", { $0[$0.count / 2] ^= 0x10 }),
            ("a foreign page header", { $0[30] ^= 1 }),
            ("another segment's content", { $0 = WalPushTests.segment(fill: 0x99, number: 0x77) })
        ]
        for (i, (what, change)) in damage.enumerated() {
            let name = String(format: "0000000100000000000000%02X", 0x20 + i)
            var bytes = try #require(FileIO.readAll(spool + "/" + name))
            change(&bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: spool + "/" + name))
            let out = dir + "/pg_wal/RECOVERYXLOG"
            let r = try WalFetch.run(repo: repo, pipeline: Pipeline(), name: name, dest: out)
            #expect(r.outcome == .fetched, "\(what)")
            #expect(
                FileManager.default.contents(atPath: out)
                    == Data(Self.segment(fill: UInt8(0x20 + i), number: UInt64(0x20 + i))), "\(what)")
            #expect(!FileManager.default.fileExists(atPath: spool + "/" + name), "\(what): the bad copy is deleted")
        }
        // Without its check record a spooled segment is not trusted either; an intact one is served.
        #expect(unlink(spool + "/000000010000000000000024.check") == 0)
        #expect(
            try WalFetch.run(
                repo: repo, pipeline: Pipeline(), name: "000000010000000000000024", dest: dir + "/pg_wal/a"
            ).outcome == .fetched)
        #expect(
            try WalFetch.run(
                repo: repo, pipeline: Pipeline(), name: "000000010000000000000025", dest: dir + "/pg_wal/b"
            ).outcome == .fromSpool)
        #expect(FileManager.default.contents(atPath: dir + "/pg_wal/b") == Data(Self.segment(fill: 0x25, number: 0x25)))
        #expect(
            !FileManager.default.fileExists(atPath: spool + "/000000010000000000000025.check"),
            "the record goes with its segment")
    }

    @Test func aMissingRepositoryIsNotTheEndOfTheArchive() throws {
        let root = dir + "/mnt/repo"
        let local = LocalRepository(root: root)
        try local.put(RepositoryInfo.key, try SealedDocument.seal(info))
        _ = try WalPush.run(
            repo: local, pipeline: Pipeline(), path: try file("000000010000000000000030", Self.segment(number: 0x30)))
        // A segment the archive does not have, in a repository that is there: the end of the archive.
        let absent = #expect(throws: CairnError.self) {
            try WalFetch.run(repo: local, pipeline: Pipeline(), name: "000000010000000000000031", dest: dir + "/x")
        }
        #expect(absent?.code == .walNotFound)
        // The repository moved away (an unmounted mount point is an empty folder): not "not found".
        try FileManager.default.moveItem(atPath: root, toPath: dir + "/moved")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let gone = #expect(throws: CairnError.self) {
            try WalFetch.run(repo: local, pipeline: Pipeline(), name: "000000010000000000000030", dest: dir + "/x")
        }
        #expect(gone?.code == .repoUninitialized)
        #expect(gone?.message.contains("unmounted") == true)
    }
}
