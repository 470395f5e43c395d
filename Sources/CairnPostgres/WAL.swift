import CairnBase
import Foundation

/// A WAL location (`XLogRecPtr`), written `X/Y` in hex.
public struct LSN: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }

    /// Parses `16/B374D848`: two groups of 1–8 hex digits, nothing else.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ (1...8).contains($0.count) && $0.allSatisfy(\.isASCIIHexDigit) }),
            let hi = UInt32(parts[0], radix: 16), let lo = UInt32(parts[1], radix: 16)
        else { return nil }
        value = UInt64(hi) << 32 | UInt64(lo)
    }

    public var description: String { String(format: "%X/%X", UInt32(value >> 32), UInt32(value & 0xffff_ffff)) }
    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let l = LSN(s) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not an LSN: \(s)"))
        }
        self = l
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    /// The number of the segment holding this location.
    public func segment(size: Int64) -> UInt64 { value / UInt64(size) }
}

/// A WAL segment on a timeline: `TTTTTTTTXXXXXXXXYYYYYYYY`.
public struct WALSegment: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var timeline: UInt32
    /// Segment number (LSN / segment size).
    public var number: UInt64
    /// The segment size this numbering assumes.
    public var segmentSize: Int64

    public init(timeline: UInt32, number: UInt64, segmentSize: Int64) {
        self.timeline = timeline
        self.number = number
        self.segmentSize = segmentSize
    }

    /// The segment holding `lsn` on `timeline`.
    public init(timeline: UInt32, lsn: LSN, segmentSize: Int64) {
        self.init(timeline: timeline, number: lsn.segment(size: segmentSize), segmentSize: segmentSize)
    }

    var segmentsPerId: UInt64 { 0x1_0000_0000 / UInt64(segmentSize) }

    /// The 24-character file name.
    public var name: String {
        String(format: "%08X%08X%08X", timeline, UInt32(number / segmentsPerId), UInt32(number % segmentsPerId))
    }

    public var description: String { name }

    /// Parses a 24-character segment name.
    public init?(name: String, segmentSize: Int64) {
        guard name.count == 24, name.allSatisfy(\.isASCIIHexDigit),
            let tli = UInt32(name.prefix(8), radix: 16),
            let hi = UInt32(name.dropFirst(8).prefix(8), radix: 16),
            let lo = UInt32(name.suffix(8), radix: 16)
        else { return nil }
        let per = 0x1_0000_0000 / UInt64(segmentSize)
        guard UInt64(lo) < per, tli > 0 else { return nil }
        self.init(timeline: tli, number: UInt64(hi) * per + UInt64(lo), segmentSize: segmentSize)
    }

    /// The next segment on the same timeline.
    public var next: WALSegment { WALSegment(timeline: timeline, number: number + 1, segmentSize: segmentSize) }

    /// The first LSN of this segment.
    public var startLSN: LSN { LSN(number * UInt64(segmentSize)) }

    public static func < (a: WALSegment, b: WALSegment) -> Bool {
        (a.number, a.timeline) < (b.number, b.timeline)
    }
}

/// A file PostgreSQL archives or asks for: a segment, a `.partial` segment, a timeline history file, or a
/// backup history file.
public enum WALFileName: Sendable, Hashable, CustomStringConvertible {
    case segment(String)
    case partial(String)
    case history(timeline: UInt32)
    case backupHistory(String)

    /// Parses a file name (no directory). Nil when it is none of the four kinds.
    public init?(_ name: String) {
        let hex = { (s: Substring) in s.allSatisfy { $0.isASCIIHexDigit && !$0.isLowercase } }
        if name.count == 24, hex(Substring(name)) {
            self = .segment(name)
        } else if name.hasSuffix(".partial"), name.count == 32, hex(name.prefix(24)) {
            self = .partial(name)
        } else if name.hasSuffix(".history"), name.count == 16, hex(name.prefix(8)),
            let t = UInt32(name.prefix(8), radix: 16)
        {
            self = .history(timeline: t)
        } else if name.hasSuffix(".backup"), name.count == 40, hex(name.prefix(24)), name.dropFirst(24).first == ".",
            hex(name.dropFirst(25).prefix(8))
        {
            self = .backupHistory(name)
        } else {
            return nil
        }
    }

    public var fileName: String {
        switch self {
        case .segment(let n), .partial(let n), .backupHistory(let n): return n
        case .history(let t): return String(format: "%08X.history", t)
        }
    }

    public var description: String { fileName }

    /// The timeline the file belongs to.
    public var timeline: UInt32 {
        switch self {
        case .history(let t): return t
        default: return UInt32(fileName.prefix(8), radix: 16) ?? 0
        }
    }
}

/// One entry of a timeline history file: the parent timeline and where the child branched off.
public struct TimelineSwitch: Sendable, Equatable, Codable {
    public var parent: UInt32
    /// The first LSN that belongs to the child timeline.
    public var switchPoint: LSN
    public var reason: String

    public init(parent: UInt32, switchPoint: LSN, reason: String = "") {
        self.parent = parent
        self.switchPoint = switchPoint
        self.reason = reason
    }

    /// Parses a `0000000N.history` file: lines `parentTLI<TAB>X/Y<TAB>reason`; comments and blanks ignored.
    public static func parseHistory(_ text: String) -> [TimelineSwitch] {
        text.split(whereSeparator: \.isNewline).compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
            let f = line.split(maxSplits: 2, whereSeparator: { $0 == "\t" || $0 == " " })
            guard f.count >= 2, let tli = UInt32(f[0]), let lsn = LSN(String(f[1])) else { return nil }
            return TimelineSwitch(
                parent: tli, switchPoint: lsn,
                reason: f.count > 2 ? f[2].trimmingCharacters(in: .whitespaces) : "")
        }
    }
}

extension Character {
    /// 0-9, a-f, A-F only (`isHexDigit` also accepts fullwidth forms).
    var isASCIIHexDigit: Bool { isASCII && isHexDigit }
}

/// Reads identity facts from WAL and control files without a connection.
public enum WALHeader {
    /// The system identifier and PostgreSQL WAL page magic from the long header at the start of a segment.
    public static func identity(ofSegment bytes: UnsafeRawBufferPointer) -> (systemIdentifier: UInt64, magic: UInt16)? {
        guard bytes.count >= 40 else { return nil }
        let magic = bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self)
        let info = bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        guard info & 0x0002 != 0 else { return nil }  // XLP_LONG_HEADER
        let sysid = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        return (sysid, magic)
    }

    /// The WAL page magic of each supported major version (`XLOG_PAGE_MAGIC`; 18's read from a segment an 18.6
    /// server wrote). A major missing here is not checked.
    public static let pageMagic: [Int: UInt16] = [
        12: 0xD101, 13: 0xD106, 14: 0xD10D, 15: 0xD110, 16: 0xD113, 17: 0xD116,
        18: 0xD118
    ]

    /// The system identifier stored at the start of `global/pg_control`.
    public static func systemIdentifier(pgControl path: String) -> UInt64? {
        guard let fh = FileHandle(forReadingAtPath: path), let d = try? fh.read(upToCount: 8), d.count == 8 else {
            return nil
        }
        return d.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
}
