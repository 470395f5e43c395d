import CairnBase
import Crypto

/// Where a large file's content sits in its bundle, piece by piece, so that a delta restore fetches only the pieces
/// that differ from the file on disk.
///
/// A file larger than one frame is stored as independent zstd frames: one ends just before the file's data, then one
/// per ``frameSize`` bytes of data (the last may be shorter). Each frame is a byte range of the stored bundle that
/// decodes on its own to exactly that slice of the file. Two digests are recorded per frame: the XXH3-128 of its
/// content (``ContentHash``), which a delta restore compares with the file on disk slice by slice, and the SHA-256
/// of its stored bytes, which proves a frame fetched by range (the bundle's own digest covers only whole reads)
/// before it is decoded.
public struct FileFrames: Codable, Sendable, Equatable {
    /// Content bytes per frame (the last frame holds the rest).
    public var frameSize: Int64
    /// The stored offset in the bundle where each frame starts, and, last, where the last one ends.
    public var offsets: [Int64]
    /// The SHA-256 (hex) of each frame's stored bytes, concatenated (64 characters per frame).
    public var storedSHA256: String
    /// The XXH3-128 (hex) of each frame's content, concatenated (32 characters per frame).
    public var xxh128: String

    /// The frame size of backups (4 MiB: a 1 % change of a 1 GiB segment fetches a few of its 256 frames; a
    /// 1 TiB cluster's index is about 110 bytes per frame, 30 MB in the manifest).
    public static let defaultFrameSize: Int64 = 4 << 20

    enum CodingKeys: String, CodingKey {
        case offsets, xxh128
        case frameSize = "frame_size"
        case storedSHA256 = "stored_sha256"
    }

    /// The number of frames.
    public var count: Int { max(0, offsets.count - 1) }

    /// The content range of frame `k` in a file of `size` bytes.
    public func contentRange(_ k: Int, fileSize size: Int64) -> Range<Int64> {
        let start = Int64(k) * frameSize
        return start..<min(start + frameSize, size)
    }

    /// The stored bytes of frames `first…last`.
    public func storedRange(_ frames: ClosedRange<Int>) -> Range<Int64> {
        offsets[frames.lowerBound]..<offsets[frames.upperBound + 1]
    }

    /// True when `content` is frame `k`'s content (its XXH3-128 is the recorded one).
    func contentMatches(_ k: Int, _ content: UnsafeRawBufferPointer) -> Bool {
        Self.digest(k, of: xxh128, length: 32).elementsEqual(ContentHash.of(content).utf8)
    }

    /// True when `stored` are frame `k`'s stored bytes (their SHA-256 is the recorded one).
    func storedMatches(_ k: Int, _ stored: UnsafeRawBufferPointer) -> Bool {
        var hash = SHA256()
        hash.update(bufferPointer: stored)
        return Self.digest(k, of: storedSHA256, length: 64).elementsEqual(Hex.encode(Array(hash.finalize())).utf8)
    }

    private static func digest(_ k: Int, of all: String, length: Int) -> Substring.UTF8View {
        let at = all.utf8.index(all.utf8.startIndex, offsetBy: length * k)
        return Substring(all.utf8[at..<all.utf8.index(at, offsetBy: length)]).utf8
    }

    /// True when the index is whole: two digests per frame, offsets in order, frames covering `size` bytes.
    public func isConsistent(fileSize size: Int64) -> Bool {
        frameSize > 0 && count > 0 && storedSHA256.utf8.count == 64 * count && xxh128.utf8.count == 32 * count
            && zip(offsets, offsets.dropFirst()).allSatisfy { $0 < $1 }
            && Int64(count - 1) * frameSize < size && Int64(count) * frameSize >= size
    }
}

/// Records a file's frames while it is stored (see ``FileFrames``).
struct FileFramesBuilder {
    private(set) var frames: FileFrames

    /// Begins with the stored offset where the first frame starts.
    init(frameSize: Int64, firstOffset: Int64) {
        frames = FileFrames(frameSize: frameSize, offsets: [firstOffset], storedSHA256: "", xxh128: "")
    }

    /// Records a frame that ended at stored offset `end`, with the digests of its content and its stored bytes.
    mutating func add(content: String, stored: SHA256.Digest, end: Int64) {
        frames.offsets.append(end)
        frames.xxh128 += content
        frames.storedSHA256 += Hex.encode(Array(stored))
    }
}
