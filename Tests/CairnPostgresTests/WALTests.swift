import CairnBase
import Foundation
import Testing

@testable import CairnPostgres

// Unit tests for Sources/CairnPostgres/WAL.swift: LSNs, segment names, archived file names, timeline history
// files and the identity in a segment's long page header. Everything here is pure and needs no cluster.

private let MiB: Int64 = 1 << 20

/// The tests of this file, so that `--filter WALTests` runs them all.
@Suite struct WALTests {}

// MARK: - LSN

extension WALTests {
    @Suite struct LSNs {
        @Test(arguments: [
            ("16/B374D848", UInt64(0x16_B374_D848)),
            ("0/0", 0),
            ("0/1", 1),
            ("1/0", 0x1_0000_0000),
            ("0/FFFFFFFF", 0xFFFF_FFFF),
            ("FFFFFFFF/FFFFFFFF", UInt64.max),
            ("0/3000148", 0x300_0148)
        ])
        func parsesAndPrintsPostgresNotation(text: String, value: UInt64) throws {
            let lsn = try #require(LSN(text))
            #expect(lsn.value == value)
            #expect(lsn.description == text)
            #expect(LSN(value).description == text)
        }

        @Test func acceptsLowercaseAndLeadingZerosButPrintsCanonically() throws {
            // pg_lsn accepts both cases; Cairn prints what PostgreSQL prints (uppercase, no padding).
            #expect(try #require(LSN("16/b374d848")).description == "16/B374D848")
            #expect(try #require(LSN("00000016/0B374D84")).description == "16/B374D84")
        }

        @Test(arguments: [
            "", "/", "16", "16/", "/16", "1/2/3", "G/0", "0/G", "0x1/0", "1 /2", " 1/2", "1/2 ",
            "100000000/0", "0/100000000", "1.5/0", "-1/0"
        ])
        func rejectsJunk(text: String) {
            #expect(LSN(text) == nil, "\"\(text)\" must not parse as an LSN")
        }

        @Test func rejectsMalformedSeparatorsAndSigns() {
            // pg_lsn_in accepts exactly `hex/hex`. These shapes come out of `split(separator:)` dropping empty pieces
            // and of Swift's integer parser accepting a sign.
            do {
                for junk in ["1//2", "/1/2", "1/2/", "+1/2", "1/+2", "-0/0"] {
                    #expect(LSN(junk) == nil, "\"\(junk)\" must not parse as an LSN")
                }
            }
        }

        @Test func ordersByPosition() throws {
            let texts = ["1/0", "0/FFFFFFFF", "0/0", "A/1", "9/FFFFFFFF", "0/10", "0/9"]
            let sorted = try texts.map { try #require(LSN($0)) }.sorted().map(\.description)
            #expect(sorted == ["0/0", "0/9", "0/10", "0/FFFFFFFF", "1/0", "9/FFFFFFFF", "A/1"])
            #expect(LSN("0/FFFFFFFF")! < LSN("1/0")!)
            #expect(!(LSN("1/0")! < LSN("1/0")!))
            #expect(LSN("1/0") == LSN(0x1_0000_0000))
        }

        @Test func encodesAsPostgresTextInJSON() throws {
            struct Doc: Codable, Equatable { var start: LSN; var stop: LSN? }
            let doc = Doc(start: LSN(0x16_B374_D848), stop: LSN(0x3_0000_0028))
            let json = try JSONEncoder().encode(doc)
            let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: String])
            #expect(object == ["start": "16/B374D848", "stop": "3/28"])
            #expect(try JSONDecoder().decode(Doc.self, from: json) == doc)
        }

        @Test func decodingRejectsWhatIsNotAnLSN() {
            struct Doc: Codable { var lsn: LSN }
            for bad in [#"{"lsn": "16-B374D848"}"#, #"{"lsn": ""}"#, #"{"lsn": 42}"#, #"{"lsn": null}"#] {
                #expect(throws: DecodingError.self, "\(bad)") {
                    try JSONDecoder().decode(Doc.self, from: Data(bad.utf8))
                }
            }
        }

        @Test func segmentNumberDependsOnSegmentSize() throws {
            let lsn = try #require(LSN("16/B374D848"))
            #expect(lsn.segment(size: 16 * MiB) == 0x16B3)
            #expect(lsn.segment(size: 1 * MiB) == 0x16_B37)
            #expect(lsn.segment(size: 64 * MiB) == 0x16_B374D848 >> 26)
            #expect(LSN(16 * 1 << 20 - 1).segment(size: 16 * MiB) == 0)
            #expect(LSN(16 * 1 << 20).segment(size: 16 * MiB) == 1)
        }
    }
}

// MARK: - WALSegment

extension WALTests {
    @Suite struct Segments {
        @Test(arguments: [
            // 16 MiB: 256 segments per 4 GiB "xlogid".
            (16 * MiB, UInt32(1), UInt64(2), "000000010000000000000002"),
            (16 * MiB, 1, 0xFF, "0000000100000000000000FF"),
            (16 * MiB, 1, 0x100, "000000010000000100000000"),
            (16 * MiB, 0xA, 0x16B3, "0000000A00000016000000B3"),
            (16 * MiB, 0xFFFF_FFFF, 0x1_23FF, "FFFFFFFF00000123000000FF"),
            // 1 MiB: 4096 per xlogid.
            (1 * MiB, 1, 0xFFF, "000000010000000000000FFF"),
            (1 * MiB, 1, 0x1000, "000000010000000100000000"),
            (1 * MiB, 3, 0x16_B37, "000000030000001600000B37"),
            // 64 MiB: 64 per xlogid.
            (64 * MiB, 1, 0x3F, "00000001000000000000003F"),
            (64 * MiB, 1, 0x40, "000000010000000100000000"),
            (64 * MiB, 2, 0x41, "000000020000000100000001"),
            // 1 GiB: 4 per xlogid.
            (1024 * MiB, 1, 7, "000000010000000100000003")
        ])
        func nameAndNumberRoundTrip(size: Int64, timeline: UInt32, number: UInt64, name: String) throws {
            let s = WALSegment(timeline: timeline, number: number, segmentSize: size)
            #expect(s.name == name)
            #expect(s.description == name)
            let parsed = try #require(WALSegment(name: name, segmentSize: size))
            #expect(parsed.timeline == timeline)
            #expect(parsed.number == number)
            #expect(parsed == s)
        }

        @Test(arguments: [
            (16 * MiB, "0000000100000000000000FF", "000000010000000100000000"),
            (16 * MiB, "000000010000000000000002", "000000010000000000000003"),
            (16 * MiB, "00000007000000FF000000FF", "000000070000010000000000"),
            (1 * MiB, "000000010000000000000FFF", "000000010000000100000000"),
            (64 * MiB, "00000001000000000000003F", "000000010000000100000000"),
            (64 * MiB, "000000020000000500000010", "000000020000000500000011")
        ])
        func nextCrossesTheXlogidBoundary(size: Int64, name: String, expectedNext: String) throws {
            let s = try #require(WALSegment(name: name, segmentSize: size))
            let next = s.next
            #expect(next.timeline == s.timeline)
            #expect(next.number == s.number + 1)
            #expect(next.segmentSize == size)
            #expect(next.name == expectedNext)
            #expect(next.startLSN.value == s.startLSN.value + UInt64(size))
        }

        @Test func startLSNIsTheFirstByteOfTheSegment() throws {
            #expect(WALSegment(timeline: 1, number: 0, segmentSize: 16 * MiB).startLSN == LSN(0))
            #expect(
                try #require(WALSegment(name: "0000000100000016000000B3", segmentSize: 16 * MiB)).startLSN.description
                    == "16/B3000000")
            #expect(
                try #require(WALSegment(name: "000000010000000100000000", segmentSize: 16 * MiB)).startLSN.description
                    == "1/0")
            #expect(
                try #require(WALSegment(name: "000000010000000100000000", segmentSize: 1 * MiB)).startLSN.description
                    == "1/0")
            #expect(
                try #require(WALSegment(name: "000000010000000000000FFF", segmentSize: 1 * MiB)).startLSN.description
                    == "0/FFF00000")
            #expect(
                try #require(WALSegment(name: "00000001000000050000003F", segmentSize: 64 * MiB)).startLSN.description
                    == "5/FC000000")
        }

        @Test(arguments: [1 * MiB, 16 * MiB, 64 * MiB])
        func segmentOfAnLSNHoldsIt(size: Int64) throws {
            for text in ["0/0", "0/1", "0/FFFFFF", "0/1000000", "16/B374D848", "1/0", "0/FFFFFFFF", "7F/3FFFFFF"] {
                let lsn = try #require(LSN(text))
                let s = WALSegment(timeline: 5, lsn: lsn, segmentSize: size)
                #expect(s.timeline == 5)
                #expect(s.startLSN <= lsn, "\(text) at \(size)")
                #expect(lsn < s.next.startLSN, "\(text) at \(size)")
                // PostgreSQL's XLogFileName: the middle 8 digits are always the LSN's high word.
                #expect(s.name.dropFirst(8).prefix(8) == String(format: "%08X", UInt32(lsn.value >> 32)))
            }
            let s = WALSegment(timeline: 1, lsn: LSN("16/B374D848")!, segmentSize: 16 * MiB)
            #expect(s.name == "0000000100000016000000B3")
            #expect(
                WALSegment(timeline: 1, lsn: LSN("16/B374D848")!, segmentSize: 1 * MiB).name
                    == "000000010000001600000B37")
        }

        @Test(arguments: [
            (16 * MiB, "000000010000000000000100"),  // low part ≥ 256
            (64 * MiB, "000000010000000000000040"),  // low part ≥ 64
            (1 * MiB, "000000010000000000001000"),  // low part ≥ 4096
            (16 * MiB, "000000000000000000000001"),  // timeline 0 does not exist
            (16 * MiB, "00000001000000000000001"),  // 23 characters
            (16 * MiB, "0000000100000000000000010"),  // 25 characters
            (16 * MiB, "00000001000000000000000G"),
            (16 * MiB, "00000001-000000000000001"),
            (16 * MiB, "000000010000000000000001.partial"),
            (16 * MiB, "")
        ])
        func rejectsNamesThatCannotExist(size: Int64, name: String) {
            #expect(WALSegment(name: name, segmentSize: size) == nil, "\(name) at \(size)")
        }

        @Test func ordersByPositionThenTimeline() {
            func s(_ t: UInt32, _ n: UInt64) -> WALSegment { WALSegment(timeline: t, number: n, segmentSize: 16 * MiB) }
            let sorted = [s(2, 5), s(1, 6), s(1, 5), s(3, 4), s(1, 0x100)].sorted()
            #expect(
                sorted.map(\.name) == [
                    "000000030000000000000004", "000000010000000000000005", "000000020000000000000005",
                    "000000010000000000000006", "000000010000000100000000"
                ])
        }
    }
}

// MARK: - WALFileName

extension WALTests {
    @Suite struct FileNames {
        @Test func segment() throws {
            let f = try #require(WALFileName("000000030000001600000B37"))
            #expect(f == .segment("000000030000001600000B37"))
            #expect(f.fileName == "000000030000001600000B37")
            #expect(f.description == f.fileName)
            #expect(f.timeline == 3)
        }

        @Test func partialSegment() throws {
            let f = try #require(WALFileName("000000010000000000000002.partial"))
            #expect(f == .partial("000000010000000000000002.partial"))
            #expect(f.fileName == "000000010000000000000002.partial")
            #expect(f.timeline == 1)
        }

        @Test(arguments: [("00000002.history", UInt32(2)), ("0000000A.history", 10), ("FFFFFFFF.history", 0xFFFF_FFFF)])
        func timelineHistory(name: String, timeline: UInt32) throws {
            let f = try #require(WALFileName(name))
            #expect(f == .history(timeline: timeline))
            #expect(f.timeline == timeline)
            #expect(f.fileName == name)
            #expect(WALFileName.history(timeline: timeline).description == name)
        }

        @Test func backupHistory() throws {
            let name = "000000010000000000000002.00000028.backup"
            let f = try #require(WALFileName(name))
            #expect(f == .backupHistory(name))
            #expect(f.fileName == name)
            #expect(f.timeline == 1)
            #expect(WALFileName("0000000B00000001000000FE.00FFC0A8.backup")?.timeline == 11)
        }

        @Test(arguments: [
            "", "RECOVERYXLOG", "RECOVERYHISTORY", "archive_status", "archive_status/000000010000000000000002.ready",
            // lowercase hex is never written by PostgreSQL
            "00000001000000000000000a", "0000000a.history", "00000001000000000000000a.partial",
            "00000001000000000000000A.0000002b.backup", "0000000100000000000000aa.00000028.backup",
            // wrong lengths
            "00000001000000000000002", "0000000100000000000000020", "0000002.history", "000000002.history",
            "00000001000000000000002.partial", "0000000100000000000000020.partial",
            "000000010000000000000002.0000028.backup", "000000010000000000000002.000000028.backup",
            // not hex, or wrong separators and suffixes
            "00000001000000000000000G", "0000000G.history", "000000010000000000000002.partial.tmp",
            "000000010000000000000002.history", "000000010000000000000002_00000028.backup",
            "000000010000000000000002.00000028.backup.zst", "000000010000000000000002.zst", ".history", "xlogtemp.123"
        ])
        func rejectsJunk(name: String) {
            #expect(WALFileName(name) == nil, "\"\(name)\" is none of the four kinds")
        }

        @Test func rejectsNonASCIIHexDigits() {
            // Character.isHexDigit is true for fullwidth digits (U+FF10…), and their uppercase is themselves.
            let fullwidthOne = "\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF10}\u{FF11}"
            let name = fullwidthOne + "0000000000000002"
            #expect(name.count == 24)
            do {
                #expect(WALFileName(name) == nil)
                #expect(WALFileName(fullwidthOne + ".history") == nil)
            }
        }
    }
}

// MARK: - Timeline history

extension WALTests {
    @Suite struct TimelineHistory {
        @Test func parsesWhatPostgresWrites() throws {
            // The layout of a real 00000003.history: parent, switch point, reason, separated by tabs.
            let text = """
                1\t0/3000148\tno recovery target specified

                2\t0/5000000\tbefore 2026-11-25 14:32:00.123456+00
                """
            let h = TimelineSwitch.parseHistory(text)
            #expect(
                h == [
                    TimelineSwitch(parent: 1, switchPoint: LSN("0/3000148")!, reason: "no recovery target specified"),
                    TimelineSwitch(
                        parent: 2, switchPoint: LSN("0/5000000")!, reason: "before 2026-11-25 14:32:00.123456+00")
                ])
        }

        @Test func ignoresCommentsBlankLinesAndSurroundingWhitespace() throws {
            let text =
                "# comment written by hand\n\n   \n\t1\t0/3000148\tat restore point \"before upgrade\"  \r\n"
                + "  # indented comment\n2\t1/A0\n\n"
            let h = TimelineSwitch.parseHistory(text)
            try #require(h.count == 2)
            #expect(h[0].parent == 1)
            #expect(h[0].switchPoint == LSN(0x300_0148))
            #expect(h[0].reason == "at restore point \"before upgrade\"")
            #expect(h[1].parent == 2)
            #expect(h[1].switchPoint == LSN(0x1_0000_00A0))
            #expect(h[1].reason == "")
        }

        @Test func reasonKeepsItsOwnTabsAndSpaces() {
            let h = TimelineSwitch.parseHistory("4 16/B374D848 after transaction 1234\tand more\n")
            #expect(
                h == [
                    TimelineSwitch(
                        parent: 4, switchPoint: LSN(0x16_B374_D848), reason: "after transaction 1234\tand more")
                ])
        }

        @Test func skipsLinesThatAreNotEntries() {
            let text = "x\t0/1\tbad parent\n1\tnot-an-lsn\treason\n7\n-1\t0/1\tnegative\n3\t0/9000000\tgood\n"
            #expect(
                TimelineSwitch.parseHistory(text) == [
                    TimelineSwitch(parent: 3, switchPoint: LSN(0x900_0000), reason: "good")
                ])
            #expect(TimelineSwitch.parseHistory("").isEmpty)
            #expect(TimelineSwitch.parseHistory("\n\n# only comments\n").isEmpty)
        }

        @Test func roundTripsThroughJSON() throws {
            let h = [TimelineSwitch(parent: 1, switchPoint: LSN(0x300_0148), reason: "r")]
            let json = try JSONEncoder().encode(h)
            let objects = try #require(try JSONSerialization.jsonObject(with: json) as? [[String: Any]])
            #expect(objects.first?["switchPoint"] as? String == "0/3000148")
            #expect(try JSONDecoder().decode([TimelineSwitch].self, from: json) == h)
        }
    }
}

// MARK: - WAL page header

extension WALTests {
    @Suite struct PageHeader {
        /// A synthetic `XLogLongPageHeaderData`: magic, info, timeline, page address, remaining length, then the
        /// system identifier at offset 24, segment size at 32 and block size at 36, all little endian.
        static func longHeader(
            magic: UInt16 = 0xD110, info: UInt16 = 0x0002, systemIdentifier: UInt64,
            length: Int = 40
        ) -> [UInt8] {
            var b = [UInt8]()
            func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
            put(magic)
            put(info)
            put(UInt32(1))  // xlp_tli
            put(UInt64(0x300_0000))  // xlp_pageaddr
            put(UInt32(0))  // xlp_rem_len
            put(UInt32(0))  // padding to 8-byte alignment
            put(systemIdentifier)
            put(UInt32(16 << 20))  // xlp_seg_size
            put(UInt32(8192))  // xlp_xlog_blcksz
            precondition(b.count == 40)
            if length > 40 { b += [UInt8](repeating: 0xAB, count: length - 40) }
            return Array(b.prefix(length))
        }

        @Test func readsTheIdentityOfALongHeader() throws {
            let bytes = Self.longHeader(systemIdentifier: 7_300_000_000_000_000_001)
            // Little endian on disk, whatever the host: spot-check the layout itself.
            #expect(bytes[0] == 0x10 && bytes[1] == 0xD1)
            #expect(bytes[24] == UInt8(7_300_000_000_000_000_001 & 0xFF))
            let id = try #require(bytes.withUnsafeBytes { WALHeader.identity(ofSegment: $0) })
            #expect(id.systemIdentifier == 7_300_000_000_000_000_001)
            #expect(id.magic == 0xD110)
            #expect(id.magic == WALHeader.pageMagic[15])
        }

        @Test func otherInfoBitsDoNotMatterAndTrailingBytesAreIgnored() throws {
            let bytes = Self.longHeader(
                magic: 0xD113, info: 0x0007, systemIdentifier: 0x0102_0304_0506_0708, length: 8192)
            let id = try #require(bytes.withUnsafeBytes { WALHeader.identity(ofSegment: $0) })
            #expect(id.systemIdentifier == 0x0102_0304_0506_0708)
            #expect(id.magic == WALHeader.pageMagic[16])
        }

        @Test func aShortHeaderHasNoIdentity() {
            // XLP_LONG_HEADER missing: a page in the middle of a segment.
            for info: UInt16 in [0x0000, 0x0001, 0x0004, 0x0005] {
                let bytes = Self.longHeader(info: info, systemIdentifier: 42)
                #expect(bytes.withUnsafeBytes { WALHeader.identity(ofSegment: $0) } == nil, "info \(info)")
            }
        }

        @Test func fewerThan40BytesHaveNoIdentity() {
            for n in [0, 1, 24, 32, 39] {
                let bytes = Self.longHeader(systemIdentifier: 42, length: n)
                #expect(bytes.count == n)
                #expect(bytes.withUnsafeBytes { WALHeader.identity(ofSegment: $0) } == nil, "\(n) bytes")
            }
        }

        @Test func pageMagicOfEverySupportedVersion() {
            #expect(WALHeader.pageMagic.keys.sorted() == [12, 13, 14, 15, 16, 17, 18])
            #expect(WALHeader.pageMagic[15] == 0xD110)
            #expect(WALHeader.pageMagic[18] == 0xD118)  // od -t x2 of an 18.6 segment's first page: d118 0002
            #expect(Set(WALHeader.pageMagic.values).count == WALHeader.pageMagic.count)
        }

        @Test func systemIdentifierOfPgControl() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
                "cairn-walheader-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let control = dir.appendingPathComponent("pg_control")
            var bytes = [UInt8]()
            withUnsafeBytes(of: UInt64(7_300_000_000_000_000_001).littleEndian) { bytes.append(contentsOf: $0) }
            bytes += [UInt8](repeating: 0x5A, count: 8184)
            try Data(bytes).write(to: control)
            #expect(WALHeader.systemIdentifier(pgControl: control.path) == 7_300_000_000_000_000_001)

            let short = dir.appendingPathComponent("short")
            try Data(bytes.prefix(7)).write(to: short)
            #expect(WALHeader.systemIdentifier(pgControl: short.path) == nil)
            #expect(WALHeader.systemIdentifier(pgControl: dir.appendingPathComponent("missing").path) == nil)
        }
    }
}
