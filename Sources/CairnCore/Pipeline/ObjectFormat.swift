import CairnBase

/// The integrity of one stored object, as recorded in manifests.
public struct ObjectDigest: Codable, Sendable, Equatable {
    /// Size of the content before compression.
    public var size: Int64
    /// SHA-256 (hex) of the content before compression.
    public var sha256: String
    /// Size of the object as stored.
    public var storedSize: Int64
    /// SHA-256 (hex) of the object as stored.
    public var storedSHA256: String

    public init(size: Int64, sha256: String, storedSize: Int64, storedSHA256: String) {
        self.size = size
        self.sha256 = sha256
        self.storedSize = storedSize
        self.storedSHA256 = storedSHA256
    }

    enum CodingKeys: String, CodingKey {
        case size, sha256
        case storedSize = "stored_size"
        case storedSHA256 = "stored_sha256"
    }
}

/// Cairn's stored object format (version 1).
///
/// An object is a zstd stream of the content (frames with XXH64 checksums), followed by one zstd *skippable
/// frame* holding a trailer: the magic `CAIRNOB1`, the content size (u64 LE) and the content's SHA-256.
/// Any zstd tool decompresses an object (skippable frames are ignored), and Cairn verifies the trailer, so an
/// object proves its own integrity without a manifest — which is how WAL segments are checked.
enum ObjectFormat {
    /// Skippable frame magic (0x184D2A50 + 0xE) and payload length.
    static let skippableMagic: UInt32 = 0x184D_2A5E
    static let tag = Array("CAIRNOB1".utf8)
    static let payloadLength = 8 + 8 + 32
    static let trailerLength = 8 + payloadLength

    static func trailer(size: Int64, sha256: [UInt8]) -> [UInt8] {
        var t = [UInt8]()
        t.reserveCapacity(trailerLength)
        appendLE(&t, UInt64(skippableMagic), bytes: 4)
        appendLE(&t, UInt64(payloadLength), bytes: 4)
        t += tag
        appendLE(&t, UInt64(size), bytes: 8)
        t += sha256
        return t
    }

    /// Parses a trailer; nil when the bytes are not one.
    static func parseTrailer(_ t: [UInt8]) -> (size: Int64, sha256: [UInt8])? {
        guard t.count == trailerLength,
              readLE(t, 0, 4) == UInt64(skippableMagic), readLE(t, 4, 4) == UInt64(payloadLength),
              Array(t[8..<16]) == tag else { return nil }
        return (Int64(bitPattern: readLE(t, 16, 8)), Array(t[24..<56]))
    }

    private static func appendLE(_ a: inout [UInt8], _ v: UInt64, bytes: Int) {
        for i in 0..<bytes { a.append(UInt8((v >> (8 * UInt64(i))) & 0xff)) }
    }

    private static func readLE(_ a: [UInt8], _ at: Int, _ bytes: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<bytes { v |= UInt64(a[at + i]) << (8 * UInt64(i)) }
        return v
    }
}
