import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnCore

// Unit tests for Sources/CairnCore/Backup/Tar.swift. Archives are made by the real GNU tar from a small tree that
// looks like a data directory (empty files, a file over 1 MiB, nested folders, symbolic links, names and link
// targets over 100 characters), then cut into awkward chunks, as they arrive from the network.

// MARK: - Helpers

/// A temporary folder; `remove()` it in a `defer`.
private struct Scratch {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-tar-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A new folder inside the scratch folder.
    func folder(_ name: String) throws -> String {
        let p = path + "/" + name
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private struct CommandFailed: Error, CustomStringConvertible {
    var description: String
}

/// Runs GNU tar and returns its standard output.
@discardableResult
private func tar(_ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(
        fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/bin/tar") ? "/bin/tar" : "/usr/bin/tar")
    p.arguments = args
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw CommandFailed(
            description: "tar \(args.joined(separator: " ")) failed: \(String(decoding: stderr, as: UTF8.self))")
    }
    return String(decoding: stdout, as: UTF8.self)
}

private enum TarFormat: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case gnu, pax
    var testDescription: String { rawValue }
}

private func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var g = SeededGenerator(seed: seed)
    var out = [UInt8]()
    out.reserveCapacity(count + 8)
    while out.count < count { withUnsafeBytes(of: g.next()) { out.append(contentsOf: $0) } }
    return Array(out.prefix(count))
}

/// How a stream is cut before it is fed.
private enum Chunking: Sendable, CustomTestStringConvertible {
    case fixed(Int)
    case random(seed: UInt64)

    static let all: [Chunking] = [
        .fixed(1), .fixed(511), .fixed(513), .fixed(4096), .random(seed: 1), .random(seed: 0xCA1F)
    ]

    var testDescription: String {
        switch self {
        case .fixed(let n): return "\(n)-byte chunks"
        case .random(let seed): return "random chunks (seed \(seed))"
        }
    }

    func ranges(_ count: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var g = SeededGenerator(seed: { if case .random(let s) = self { return s } else { return 0 } }())
        var off = 0
        while off < count {
            let n: Int
            switch self {
            case .fixed(let size): n = size
            case .random: n = Int.random(in: 1...9000, using: &g)
            }
            out.append(off..<min(count, off + n))
            off += n
        }
        return out
    }

    /// Feeds `bytes` to `sink` in this chunking.
    func feed(_ bytes: [UInt8], to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try bytes.withUnsafeBytes { all in
            for r in ranges(bytes.count) { try sink(UnsafeRawBufferPointer(rebasing: all[r])) }
        }
    }
}

/// A tree shaped like a small data directory, under `<root>/data`.
private enum SourceTree {
    static let longFileName = "relfilenode_" + String(repeating: "f", count: 110) + ".dat"  // 126 characters
    static let longLinkTarget = "/srv/tablespaces/" + String(repeating: "t", count: 120)
    static let bigSize = (1 << 20) + 1000

    /// Files by relative path: (content, mode).
    static var files: [(String, [UInt8], UInt16)] {
        [
            ("data/PG_VERSION", Array("15\n".utf8), 0o600),
            ("data/empty", [], 0o600),
            ("data/exactly_one_block", pseudoRandomBytes(512, seed: 7), 0o640),
            ("data/zeros", [UInt8](repeating: 0, count: 3000), 0o600),  // data that looks like end-of-archive blocks
            ("data/global/pg_control", pseudoRandomBytes(8192, seed: 8), 0o600),
            ("data/base/1/16384", pseudoRandomBytes(bigSize, seed: 9), 0o600),
            ("data/base/1/empty_fsm", [], 0o600),
            ("data/scripts/archive.sh", Array("#!/bin/sh\nexit 0\n".utf8), 0o755),
            ("data/deep/" + String(repeating: "d", count: 90) + "/" + longFileName, Array("long name\n".utf8), 0o644)
        ]
    }

    static let directories: [(String, UInt16)] = [
        ("data", 0o750), ("data/global", 0o700), ("data/base", 0o700), ("data/base/1", 0o700), ("data/scripts", 0o755),
        ("data/pg_tblspc", 0o700), ("data/deep", 0o700), ("data/deep/" + String(repeating: "d", count: 90), 0o750)
    ]

    static let symlinks: [(String, String)] = [
        ("data/pg_tblspc/16385", "/srv/tablespaces/ts1"),  // absolute, dangling: never followed
        ("data/current", "base/1"),  // relative
        ("data/pg_tblspc/16386", longLinkTarget),  // target over 100 characters
        ("data/deep/" + String(repeating: "l", count: 105), "../PG_VERSION")  // name over 100 characters
    ]

    /// Regular files in the tree.
    static var fileCount: Int { files.count }
    static var entryCount: Int { files.count + directories.count + symlinks.count }
    static var totalFileBytes: Int64 { files.reduce(0) { $0 + Int64($1.1.count) } }

    static func build(at root: String) throws {
        for (dir, _) in directories {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        for (path, bytes, mode) in files {
            try Data(bytes).write(to: URL(fileURLWithPath: root + "/" + path))
            try #require(chmod(root + "/" + path, mode_t(mode)) == 0)
        }
        for (path, target) in symlinks {
            try FileManager.default.createSymbolicLink(atPath: root + "/" + path, withDestinationPath: target)
        }
        for (dir, mode) in directories { try #require(chmod(root + "/" + dir, mode_t(mode)) == 0) }
    }
}

/// What a path in a tree is, as far as a restore cares.
private enum Node: Equatable, CustomStringConvertible {
    case directory(mode: UInt16)
    case file(mode: UInt16, size: Int, fnv1a: UInt64)
    case symlink(target: String)

    var description: String {
        switch self {
        case .directory(let m): return "directory \(String(m, radix: 8))"
        case .file(let m, let size, let h):
            return "file \(String(m, radix: 8)), \(size) bytes, fnv1a \(String(h, radix: 16))"
        case .symlink(let t): return "symlink -> \(t)"
        }
    }
}

private func fnv1a(_ bytes: Data) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

/// Every path under `root` (relative, without `root` itself) and what it is; symbolic links are not followed.
private func snapshot(_ root: String) throws -> [String: Node] {
    var out: [String: Node] = [:]
    func walk(_ rel: String) throws {
        let full = rel.isEmpty ? root : root + "/" + rel
        for name in try FileManager.default.contentsOfDirectory(atPath: full) {
            let r = rel.isEmpty ? name : rel + "/" + name
            var st = stat()
            try #require(lstat(root + "/" + r, &st) == 0)
            let mode = UInt16(st.st_mode & 0o7777)
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                out[r] = .directory(mode: mode)
                try walk(r)
            case S_IFLNK:
                out[r] = .symlink(target: try FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + r))
            default:
                let d = try Data(contentsOf: URL(fileURLWithPath: root + "/" + r))
                out[r] = .file(mode: mode, size: d.count, fnv1a: fnv1a(d))
            }
        }
    }
    try walk("")
    return out
}

/// Expects two trees to hold the same paths with the same content, link targets and modes.
private func expectSameTree(
    _ actual: [String: Node], _ expected: [String: Node], sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        Set(actual.keys).subtracting(expected.keys).sorted() == [], "unexpected paths", sourceLocation: sourceLocation)
    #expect(Set(expected.keys).subtracting(actual.keys).sorted() == [], "missing paths", sourceLocation: sourceLocation)
    for (path, node) in expected.sorted(by: { $0.key < $1.key }) {
        if let a = actual[path] { #expect(a == node, "\(path)", sourceLocation: sourceLocation) }
    }
}

private func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

private func exists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// The process umask, read without changing it (Linux).
private func processUmask() -> mode_t? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") })
    else { return nil }
    return mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8)
}

/// A scratch folder with the source tree in `src/` and its archive in the given format.
private struct Fixture {
    let scratch: Scratch
    let source: String
    let archivePath: String
    let archive: [UInt8]
    /// `tar -tf`: the names of the archive's entries, in order.
    let listing: [String]
    /// `tar -tR`: the block of each entry's header (GNU: its first meta header; pax: the entry's own header), and
    /// the block where the end-of-archive marker begins.
    let blocks: [Int]
    let endBlock: Int

    init(_ format: TarFormat) throws {
        scratch = try Scratch()
        source = try scratch.folder("src")
        try SourceTree.build(at: source)
        archivePath = scratch.path + "/backup.tar"
        try tar(["--format=\(format.rawValue)", "-cf", archivePath, "-C", source, "data"])
        archive = try readBytes(archivePath)
        // "block 12: data/empty", then "block 40: ** Block of NULs **".
        var names: [String] = []
        var blocks: [Int] = []
        var end: Int?
        for line in try tar(["-tRf", archivePath]).split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            let number = try #require(Int(parts[0].dropFirst("block ".count)), "\(line)")
            let name = String(parts[1].dropFirst())
            if name == "** Block of NULs **" { end = number } else { names.append(name); blocks.append(number) }
        }
        listing = names
        self.blocks = blocks
        endBlock = try #require(end)
    }
}

/// Records what a splitter passes on.
private final class SplitRecorder {
    var emitted: [UInt8] = []
    var entries: [TarHeader] = []
    /// How many bytes had been emitted when each entry began.
    var entryOffsets: [Int] = []

    func splitter() -> TarSplitter {
        TarSplitter(
            onEntry: { h in
                self.entries.append(h)
                self.entryOffsets.append(self.emitted.count)
            },
            emit: { b in
                self.emitted.append(contentsOf: b)
            })
    }
}

/// The tests of this file, so that `--filter TarTests` runs them all.
@Suite struct TarTests {}

// MARK: - TarSplitter

extension TarTests {
    @Suite struct Splitter {
        @Test(arguments: TarFormat.allCases, Chunking.all)
        fileprivate func passesEveryEntryThroughUnchanged(format: TarFormat, chunking: Chunking) throws {
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            #expect(f.listing.count == SourceTree.entryCount)

            let rec = SplitRecorder()
            let splitter = rec.splitter()
            try chunking.feed(f.archive) { try splitter.feed($0) }
            try splitter.finish()

            // One call per entry, however many meta headers (GNU long names, pax records) precede it, each before the
            // entry's first byte: at its first meta header, after the previous entry.
            try #require(rec.entries.count == f.listing.count)
            #expect(rec.entryOffsets.first == 0)
            #expect(rec.entryOffsets.allSatisfy { $0 % TarHeader.block == 0 })
            for (i, offset) in rec.entryOffsets.enumerated() {
                #expect(offset <= f.blocks[i] * TarHeader.block, "entry \(i) \(f.listing[i])")
                if i > 0 { #expect(offset > f.blocks[i - 1] * TarHeader.block, "entry \(i) \(f.listing[i])") }
            }
            if format == .gnu {
                // GNU tar counts an entry from its first header, as the splitter must.
                #expect(rec.entryOffsets == f.blocks.map { $0 * TarHeader.block })
            }
            // Entries that carry their own name are named as tar lists them, in the same order.
            let named = rec.entries.filter { !$0.isMeta }.map(\.name)
            #expect(named.allSatisfy { f.listing.contains($0) })
            #expect(named == f.listing.filter { named.contains($0) })
            switch format {
            case .gnu:
                // Names over 100 characters bring an 'L' header, link targets over 100 characters a 'K' header.
                let longNames = Set(
                    f.listing.filter { $0.utf8.count > 100 }.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 })
                let longTargets = Set(SourceTree.symlinks.filter { $0.1.utf8.count > 100 }.map(\.0))
                #expect(longNames.union(longTargets).count == 4)
                #expect(rec.entries.filter(\.isMeta).count == longNames.union(longTargets).count)
            case .pax:
                #expect(rec.entries.allSatisfy { $0.type == UInt8(ascii: "x") })
            }

            // The bytes come out exactly as they went in, without the end-of-archive blocks and the record padding.
            #expect(rec.emitted.count == f.endBlock * TarHeader.block)
            #expect(rec.emitted == Array(f.archive.prefix(rec.emitted.count)))
            let tail = f.archive.dropFirst(rec.emitted.count)
            #expect(tail.count >= 2 * TarHeader.block)
            #expect(tail.allSatisfy { $0 == 0 })
            #expect(rec.emitted.count > SourceTree.bigSize)
        }

        @Test(arguments: TarFormat.allCases)
        fileprivate func bytesAfterTheEndOfArchiveAreIgnored(format: TarFormat) throws {
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            let rec = SplitRecorder()
            let splitter = rec.splitter()
            try Chunking.fixed(4096).feed(f.archive + [UInt8](repeating: 0x41, count: 3000)) { try splitter.feed($0) }
            try splitter.finish()
            #expect(rec.entries.count == SourceTree.entryCount)
            #expect(rec.emitted.count == f.endBlock * TarHeader.block)
            #expect(rec.emitted == Array(f.archive.prefix(rec.emitted.count)))
            #expect(f.archive.dropFirst(rec.emitted.count).allSatisfy { $0 == 0 })
        }

        @Test(arguments: TarFormat.allCases)
        fileprivate func anArchiveWithoutItsEndMarkerIsComplete(format: TarFormat) throws {
            // The server's BASE_BACKUP stream does not carry the two zero blocks (pg_basebackup adds them), so an
            // archive that stops right after its last entry is whole.
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            let rec = SplitRecorder()
            let splitter = rec.splitter()
            let unterminated = Array(f.archive.prefix(f.endBlock * TarHeader.block))
            try Chunking.random(seed: 5).feed(unterminated) { try splitter.feed($0) }
            try splitter.finish()
            #expect(rec.entries.count == SourceTree.entryCount)
            #expect(rec.emitted == unterminated)
        }

        @Test(arguments: TarFormat.allCases)
        fileprivate func aTruncatedArchiveFailsAtFinish(format: TarFormat) throws {
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            // Where the entries begin, and which one is the big file.
            let probe = SplitRecorder()
            let full = probe.splitter()
            try Chunking.fixed(65536).feed(f.archive) { try full.feed($0) }
            let big = try #require(
                probe.entries.indices.first { i in
                    let end = i + 1 < probe.entryOffsets.count ? probe.entryOffsets[i + 1] : probe.emitted.count
                    return end - probe.entryOffsets[i] > SourceTree.bigSize
                })
            let bigStart = probe.entryOffsets[big]

            let cuts = [
                100,  // inside the first header
                TarHeader.block + 7,  // inside the second block
                bigStart + 4 * TarHeader.block,  // at a block boundary inside the big file's data
                bigStart + SourceTree.bigSize / 2 + 3,  // inside the big file's data
                probe.emitted.count - 1  // one byte short of the last entry's end
            ]
            for cut in cuts {
                let rec = SplitRecorder()
                let splitter = rec.splitter()
                try Chunking.fixed(513).feed(Array(f.archive.prefix(cut))) { try splitter.feed($0) }
                let e = #expect(throws: CairnError.self, "cut at \(cut)") { try splitter.finish() }
                #expect(e?.code == .backupFailed)
                #expect(e?.message.contains("middle of an entry") == true)
            }
        }

        @Test fileprivate func aDamagedHeaderIsRefused() throws {
            let f = try Fixture(.gnu)
            defer { f.scratch.remove() }
            var damaged = f.archive
            damaged[TarHeader.block + 2] ^= 0x20  // a letter of the second entry's name: the checksum no longer matches
            let splitter = SplitRecorder().splitter()
            let e = #expect(throws: CairnError.self) {
                try Chunking.fixed(4096).feed(damaged) { try splitter.feed($0) }
            }
            #expect(e?.code == .dataCorrupt)
            #expect(e?.message.contains("checksum") == true)
        }
    }
}

// MARK: - TarExtractor

extension TarTests {
    @Suite struct Extractor {
        @Test(arguments: TarFormat.allCases, Chunking.all)
        fileprivate func rebuildsTheTreeByteForByte(format: TarFormat, chunking: Chunking) throws {
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            let root = try f.scratch.folder("restore")
            let x = TarExtractor(root: root)
            try chunking.feed(f.archive) { try x.feed($0) }
            try x.finish()

            expectSameTree(try snapshot(root), try snapshot(f.source))
            #expect(x.files == SourceTree.fileCount)
            #expect(x.bytes == SourceTree.totalFileBytes)
            // Spot checks that do not depend on the snapshot helper.
            #expect(try readBytes(root + "/data/base/1/16384") == pseudoRandomBytes(SourceTree.bigSize, seed: 9))
            #expect(
                try FileManager.default.destinationOfSymbolicLink(atPath: root + "/data/pg_tblspc/16386")
                    == SourceTree.longLinkTarget)
        }

        @Test(arguments: TarFormat.allCases)
        fileprivate func aSplitArchiveRestoresLikeTheWhole(format: TarFormat) throws {
            // The splitter's output (no end-of-archive blocks) is what a bundle holds: it must extract on its own.
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            let rec = SplitRecorder()
            let splitter = rec.splitter()
            try Chunking.fixed(8192).feed(f.archive) { try splitter.feed($0) }
            try splitter.finish()
            let root = try f.scratch.folder("restore")
            let x = TarExtractor(root: root)
            try Chunking.random(seed: 99).feed(rec.emitted) { try x.feed($0) }
            try x.finish()
            expectSameTree(try snapshot(root), try snapshot(f.source))
        }

        @Test(arguments: TarFormat.allCases)
        fileprivate func rewritesSymbolicLinkTargets(format: TarFormat) throws {
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            let root = try f.scratch.folder("restore")
            final class Calls { var seen: [String: String] = [:] }
            let calls = Calls()
            let x = TarExtractor(
                root: root,
                linkTarget: { name, target in
                    calls.seen[name] = target
                    return name == "data/pg_tblspc/16385" ? "/mnt/new-ts1" : target
                })
            try Chunking.fixed(777).feed(f.archive) { try x.feed($0) }
            try x.finish()

            // The closure sees every link with the name and target from the archive (long ones reassembled).
            #expect(calls.seen == Dictionary(uniqueKeysWithValues: SourceTree.symlinks.map { ($0.0, $0.1) }))
            let fm = FileManager.default
            #expect(try fm.destinationOfSymbolicLink(atPath: root + "/data/pg_tblspc/16385") == "/mnt/new-ts1")
            #expect(
                try fm.destinationOfSymbolicLink(atPath: root + "/data/pg_tblspc/16386") == SourceTree.longLinkTarget)
            #expect(try fm.destinationOfSymbolicLink(atPath: root + "/data/current") == "base/1")
        }

        @Test fileprivate func createsParentsOfEntriesThatArriveBeforeTheirFolder() throws {
            let s = try Scratch()
            defer { s.remove() }
            let src = try s.folder("src")
            try SourceTree.build(at: src)
            // Deepest first: every file and link comes before the directory entries that hold it.
            let members =
                Array((SourceTree.files.map(\.0) + SourceTree.symlinks.map(\.0)).sorted().reversed())
                + Array(SourceTree.directories.map(\.0).sorted().reversed())
            let archive = s.path + "/reversed.tar"
            try tar(["--format=gnu", "--no-recursion", "-cf", archive, "-C", src] + members)
            let listing = try tar(["-tf", archive]).split(separator: "\n")
            #expect(listing.first == "data/zeros")
            #expect(listing.last == "data/")

            let root = try s.folder("restore")
            let x = TarExtractor(root: root)
            try Chunking.fixed(1000).feed(try readBytes(archive)) { try x.feed($0) }
            try x.finish()
            // Directory modes come from their (late) entries, not from the defaults used to create them early.
            expectSameTree(try snapshot(root), try snapshot(src))
        }

        @Test fileprivate func extractsDotSlashNamesIntoTheRoot() throws {
            let s = try Scratch()
            defer { s.remove() }
            let src = try s.folder("src")
            try SourceTree.build(at: src)
            let archive = s.path + "/dot.tar"
            try tar(["--format=gnu", "-cf", archive, "-C", src + "/data", "."])
            #expect(try tar(["-tf", archive]).hasPrefix("./"))

            let root = try s.folder("restore")
            let x = TarExtractor(root: root)
            try Chunking.fixed(4096).feed(try readBytes(archive)) { try x.feed($0) }
            try x.finish()
            var expected = try snapshot(src + "/data")
            var actual = try snapshot(root)
            // `./` is the root itself; its mode is applied to the root.
            expected["."] = .directory(mode: 0o750)
            var st = stat()
            try #require(stat(root, &st) == 0)
            actual["."] = .directory(mode: UInt16(st.st_mode & 0o7777))
            expectSameTree(actual, expected)
        }

        @Test(arguments: ["../evil", "sub/../../evil"])
        fileprivate func refusesNamesThatClimbOutOfTheRoot(member: String) throws {
            let s = try Scratch()
            defer { s.remove() }
            // src/work/ok.txt and src/evil: from src/work, "../evil" names src/evil.
            let work = try s.folder("src/work")
            _ = try s.folder("src/work/sub")
            try Data("fine\n".utf8).write(to: URL(fileURLWithPath: work + "/ok.txt"))
            try Data("evil\n".utf8).write(to: URL(fileURLWithPath: s.path + "/src/evil"))
            let archive = s.path + "/evil.tar"
            try tar(["--format=gnu", "-P", "-cf", archive, "-C", work, "ok.txt", member])
            #expect(try tar(["-P", "-tf", archive]).split(separator: "\n") == ["ok.txt", Substring(member)])

            // The root sits two levels down, so "../evil" would land in out/ and "sub/../../evil" too.
            let out = try s.folder("out")
            let root = try s.folder("out/root")
            let x = TarExtractor(root: root)
            let e = #expect(throws: CairnError.self) {
                try Chunking.fixed(100).feed(try readBytes(archive)) { try x.feed($0) }
            }
            #expect(e?.code == .dataCorrupt)
            #expect(e?.message.contains("unsafe path") == true)
            #expect(!exists(out + "/evil"))
            #expect(!exists(s.path + "/evil"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: out) == ["root"])
            // What came before the bad entry was restored.
            #expect(try readBytes(root + "/ok.txt") == Array("fine\n".utf8))
        }

        @Test fileprivate func refusesAbsoluteNames() throws {
            let s = try Scratch()
            defer { s.remove() }
            let victimDir = try s.folder("victim")
            let victim = victimDir + "/abs.txt"
            try Data("absolute\n".utf8).write(to: URL(fileURLWithPath: victim))
            let archive = s.path + "/abs.tar"
            try tar(["--format=gnu", "-P", "-cf", archive, victim])
            #expect(try tar(["-P", "-tf", archive]).hasPrefix("/"))
            try FileManager.default.removeItem(atPath: victim)

            let root = try s.folder("out/root")
            let x = TarExtractor(root: root)
            let e = #expect(throws: CairnError.self) {
                try Chunking.fixed(512).feed(try readBytes(archive)) { try x.feed($0) }
            }
            #expect(e?.code == .dataCorrupt)
            #expect(!exists(victim))
            #expect(try FileManager.default.contentsOfDirectory(atPath: root) == [])
        }

        @Test fileprivate func doesNotWriteThroughSymbolicLinksOutOfTheRoot() throws {
            // "Nothing is written outside the root" must hold for links the archive itself planted: a link to an
            // outside folder followed by a file "under" it, and a link to an outside file followed by a file of
            // the same name.
            let s = try Scratch()
            defer { s.remove() }
            let outside = try s.folder("outside")
            try Data("original\n".utf8).write(to: URL(fileURLWithPath: outside + "/target.txt"))
            let first = try s.folder("first")
            try FileManager.default.createSymbolicLink(atPath: first + "/escape", withDestinationPath: outside)
            try FileManager.default.createSymbolicLink(
                atPath: first + "/victim", withDestinationPath: outside + "/target.txt")
            let second = try s.folder("second")
            _ = try s.folder("second/escape")
            try Data("pwned\n".utf8).write(to: URL(fileURLWithPath: second + "/escape/pwned"))
            try Data("overwritten\n".utf8).write(to: URL(fileURLWithPath: second + "/victim"))
            let archive = s.path + "/links.tar"
            try tar([
                "--format=gnu", "--no-recursion", "-cf", archive, "-C", first, "escape", "victim",
                "-C", second, "escape/pwned", "victim"
            ])

            let root = try s.folder("out/root")
            let x = TarExtractor(root: root)
            // Refusing the archive is as good as skipping the entries; only the outside folder matters here.
            _ = try? Chunking.fixed(4096).feed(try readBytes(archive)) { try x.feed($0) }
            do {
                #expect(!exists(outside + "/pwned"))
                #expect(try readBytes(outside + "/target.txt") == Array("original\n".utf8))
            }
        }

        @Test(.enabled(if: (processUmask() ?? 0) & 0o066 != 0, "needs a umask that clears group or other bits"))
        fileprivate func fileModesDoNotDependOnTheUmask() throws {
            // Directories get their mode with chmod; regular files only through open(2), which applies the umask.
            let s = try Scratch()
            defer { s.remove() }
            let src = try s.folder("src/data")
            try Data("shared\n".utf8).write(to: URL(fileURLWithPath: src + "/shared.conf"))
            try #require(chmod(src + "/shared.conf", 0o666) == 0)
            try #require(chmod(src, 0o777) == 0)
            let archive = s.path + "/modes.tar"
            try tar(["--format=gnu", "-cf", archive, "-C", s.path + "/src", "data"])
            let root = try s.folder("restore")
            let x = TarExtractor(root: root)
            try Chunking.fixed(4096).feed(try readBytes(archive)) { try x.feed($0) }
            try x.finish()
            #expect(try snapshot(root)["data"] == .directory(mode: 0o777))
            do {
                #expect(
                    try snapshot(root)["data/shared.conf"]
                        == .file(mode: 0o666, size: 7, fnv1a: fnv1a(Data("shared\n".utf8))))
            }
        }

        @Test(arguments: TarFormat.allCases)
        fileprivate func aTruncatedArchiveFailsAtFinish(format: TarFormat) throws {
            let f = try Fixture(format)
            defer { f.scratch.remove() }
            // The big file is most of the archive, so these cuts fall inside its data.
            for cut in [f.archive.count / 2 + 5, f.archive.count / 3 * 2 + 11] {
                let s = try f.scratch.folder("restore-\(cut)")
                let x = TarExtractor(root: s)
                try Chunking.fixed(4096).feed(Array(f.archive.prefix(cut))) { try x.feed($0) }
                let e = #expect(throws: CairnError.self, "cut at \(cut)") { try x.finish() }
                #expect(e?.code == .dataCorrupt)
            }
        }

        @Test fileprivate func aDamagedHeaderIsRefused() throws {
            let f = try Fixture(.pax)
            defer { f.scratch.remove() }
            // Damage the header that starts the third entry, well into the stream.
            let probe = SplitRecorder()
            let splitter = probe.splitter()
            try Chunking.fixed(65536).feed(f.archive) { try splitter.feed($0) }
            var damaged = f.archive
            damaged[probe.entryOffsets[2] + 1] ^= 0x01
            let x = TarExtractor(root: try f.scratch.folder("restore"))
            let e = #expect(throws: CairnError.self) {
                try Chunking.fixed(4096).feed(damaged) { try x.feed($0) }
            }
            #expect(e?.code == .dataCorrupt)
        }
    }
}

// MARK: - TarHeader

extension TarTests {
    @Suite struct Header {
        /// The header block of the entry named `name` in a real archive.
        fileprivate static func headerBlock(named name: String, in f: Fixture) throws -> [UInt8] {
            var off = 0
            while off + TarHeader.block <= f.archive.count {
                let block = Array(f.archive[off..<(off + TarHeader.block)])
                guard let h = try block.withUnsafeBytes({ try TarHeader.parse($0) }) else { break }
                if h.name == name { return block }
                off += TarHeader.block + Int(h.size + TarHeader.padding(h.size))
            }
            throw CommandFailed(description: "no entry \(name)")
        }

        fileprivate static func setChecksum(_ b: inout [UInt8]) {
            for i in 148..<156 { b[i] = 0x20 }
            let sum = b.reduce(0) { $0 + Int($1) }
            let text = Array(String(format: "%06o", sum).utf8) + [0, 0x20]
            b.replaceSubrange(148..<156, with: text)
        }

        @Test fileprivate func parsesTheFieldsOfRealHeaders() throws {
            let f = try Fixture(.gnu)
            defer { f.scratch.remove() }
            let dir = try Self.headerBlock(named: "data/", in: f).withUnsafeBytes { try TarHeader.parse($0) }
            #expect(dir?.type == UInt8(ascii: "5"))
            #expect(dir?.mode == 0o750)
            #expect(dir?.size == 0)
            let file = try Self.headerBlock(named: "data/base/1/16384", in: f).withUnsafeBytes {
                try TarHeader.parse($0)
            }
            #expect(file?.type == UInt8(ascii: "0"))
            #expect(file?.mode == 0o600)
            #expect(file?.size == Int64(SourceTree.bigSize))
            #expect(file?.isMeta == false)
            let link = try Self.headerBlock(named: "data/current", in: f).withUnsafeBytes { try TarHeader.parse($0) }
            #expect(link?.type == UInt8(ascii: "2"))
            #expect(link?.linkName == "base/1")
        }

        @Test fileprivate func readsGNUBase256Sizes() throws {
            let f = try Fixture(.gnu)
            defer { f.scratch.remove() }
            var b = try Self.headerBlock(named: "data/PG_VERSION", in: f)
            let size: Int64 = 8 << 30 + 5  // over the 8 GiB that 11 octal digits can hold
            var field = [UInt8](repeating: 0, count: 12)
            field[0] = 0x80
            for i in 0..<8 { field[11 - i] = UInt8(truncatingIfNeeded: size >> (8 * i)) }
            b.replaceSubrange(124..<136, with: field)
            Self.setChecksum(&b)
            let h = try b.withUnsafeBytes { try TarHeader.parse($0) }
            #expect(h?.size == size)
            #expect(h?.name == "data/PG_VERSION")
        }

        @Test fileprivate func refusesBadNumbersAndChecksums() throws {
            let f = try Fixture(.gnu)
            defer { f.scratch.remove() }
            let good = try Self.headerBlock(named: "data/PG_VERSION", in: f)
            var badSize = good
            badSize.replaceSubrange(124..<136, with: Array("0000000009x\0".utf8))
            Self.setChecksum(&badSize)
            let e1 = #expect(throws: CairnError.self) { try badSize.withUnsafeBytes { try TarHeader.parse($0) } }
            #expect(e1?.code == .dataCorrupt)
            #expect(e1?.message.contains("bad number field") == true)

            var badSum = good
            badSum[0] ^= 0x01
            let e2 = #expect(throws: CairnError.self) { try badSum.withUnsafeBytes { try TarHeader.parse($0) } }
            #expect(e2?.message.contains("checksum") == true)
        }

        @Test func anAllZeroBlockEndsTheArchive() throws {
            let zero = [UInt8](repeating: 0, count: TarHeader.block)
            #expect(try zero.withUnsafeBytes { try TarHeader.parse($0) } == nil)
        }

        @Test func paddingRoundsUpToWholeBlocks() {
            #expect(TarHeader.padding(0) == 0)
            #expect(TarHeader.padding(1) == 511)
            #expect(TarHeader.padding(511) == 1)
            #expect(TarHeader.padding(512) == 0)
            #expect(TarHeader.padding(513) == 511)
            #expect(TarHeader.padding(Int64(SourceTree.bigSize)) == 512 - 1000 % 512)
        }
    }
}
