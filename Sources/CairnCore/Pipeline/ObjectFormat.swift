import CairnBase

/// The integrity of one stored object, as recorded in manifests.
public struct ObjectDigest: Codable, Sendable, Equatable {
    /// Size of the content before compression.
    public var size: Int64
    /// SHA-256 (hex) of the content before compression; empty when the object does not record one (format 3:
    /// backup bundles, whose files' CRC-32C is in the PostgreSQL manifest, and WAL).
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

/// Cairn's stored object format (versions 2 and 3).
///
/// An object is a zstd stream of the content (frames with XXH64 checksums), followed by one zstd *skippable
/// frame* holding a trailer: the magic `CAIRNOB2`, the content size (u64 LE), the content's SHA-256 and the SHA-256
/// of every stored byte before the trailer. Any zstd tool decompresses an object (skippable frames are ignored),
/// and Cairn verifies the trailer, so an object proves its own integrity without a manifest — which is how WAL
/// segments are checked. The digest of the compressed bytes catches the changes a decoder would not notice (a
/// flipped bit in a frame's window size decompresses to the same content). Version 3 (`CAIRNOB3`, backup
/// bundles and WAL) is version 2 with the content digest left out (its field must be zero): the SHA-256 of the
/// stored bytes and zstd's content checksums already prove the content; hashing every byte a second time cost a
/// quarter of a backup's CPU (every bundled file's CRC-32C is in the PostgreSQL manifest), and a WAL push that
/// finds its segment already stored compares the content itself. Version 1 trailers (`CAIRNOB1`, no compressed
/// digest) are still read.
enum ObjectFormat {
    /// Skippable frame magic (0x184D2A50 + 0xE).
    static let skippableMagic: UInt32 = 0x184D_2A5E
    static let tag = Array("CAIRNOB2".utf8)
    static let tagV1 = Array("CAIRNOB1".utf8)
    static let tagV3 = Array("CAIRNOB3".utf8)
    static let payloadLength = 8 + 8 + 32 + 32
    static let payloadLengthV1 = 8 + 8 + 32
    static let trailerLength = 8 + payloadLength
    static let trailerLengthV1 = 8 + payloadLengthV1

    /// What a trailer records.
    struct Trailer: Equatable {
        var size: Int64
        /// The content's SHA-256 (nil in version 3).
        var sha256: [UInt8]?
        /// SHA-256 of the stored bytes before the trailer (nil in version 1).
        var storedSHA256: [UInt8]?
    }

    /// A version 2 trailer, or version 3 when `sha256` is nil.
    static func trailer(size: Int64, sha256: [UInt8]?, storedSHA256: [UInt8]) -> [UInt8] {
        var t = [UInt8]()
        t.reserveCapacity(trailerLength)
        appendLE(&t, UInt64(skippableMagic), bytes: 4)
        appendLE(&t, UInt64(payloadLength), bytes: 4)
        t += sha256 == nil ? tagV3 : tag
        appendLE(&t, UInt64(size), bytes: 8)
        t += sha256 ?? [UInt8](repeating: 0, count: 32)
        t += storedSHA256
        return t
    }

    /// Parses the trailer at the end of `tail` (the object's last bytes, at least ``trailerLength`` of them when
    /// the object is that long); nil when they do not end with one. Also returns the trailer's length.
    static func parseTrailer(_ tail: [UInt8]) -> (trailer: Trailer, length: Int)? {
        if tail.count >= trailerLength {
            let t = Array(tail.suffix(trailerLength))
            if readLE(t, 0, 4) == UInt64(skippableMagic), readLE(t, 4, 4) == UInt64(payloadLength) {
                let version = Array(t[8..<16])
                if version == tag {
                    return (
                        Trailer(
                            size: Int64(bitPattern: readLE(t, 16, 8)), sha256: Array(t[24..<56]),
                            storedSHA256: Array(t[56..<88])),
                        trailerLength
                    )
                }
                if version == tagV3, t[24..<56].allSatisfy({ $0 == 0 }) {
                    return (
                        Trailer(
                            size: Int64(bitPattern: readLE(t, 16, 8)), sha256: nil, storedSHA256: Array(t[56..<88])),
                        trailerLength
                    )
                }
            }
        }
        if tail.count >= trailerLengthV1 {
            let t = Array(tail.suffix(trailerLengthV1))
            if readLE(t, 0, 4) == UInt64(skippableMagic), readLE(t, 4, 4) == UInt64(payloadLengthV1),
                Array(t[8..<16]) == tagV1
            {
                return (
                    Trailer(size: Int64(bitPattern: readLE(t, 16, 8)), sha256: Array(t[24..<56]), storedSHA256: nil),
                    trailerLengthV1
                )
            }
        }
        return nil
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
