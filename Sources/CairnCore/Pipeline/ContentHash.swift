import CXXHash
import CairnBase

/// XXH3-128 of content (xxHash, rsync's default file checksum): what a delta restore compares the files on disk
/// with (``FileFrames``, ``BackupManifest/BundleContents/File/xxh128``). It tells content apart — an accidental
/// difference goes unnoticed with a chance of 2⁻¹²⁸ — at a fraction of SHA-256's cost; it is not meant to resist a
/// forger, so what a restore fetches from a repository is proven by SHA-256 of the stored bytes instead.
final class ContentHash {
    private let state: UnsafeMutableRawPointer

    init() throws {
        guard let s = cairn_xxh128_new() else { throw CairnError(.internal, "cannot allocate an XXH3 state") }
        state = s
    }

    deinit { cairn_xxh128_free(state) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress { cairn_xxh128_update(state, base, bytes.count) }
    }

    /// The digest (hex) of everything passed since the start or the last `finish`; starts over.
    func finish() -> String {
        var out = [UInt8](repeating: 0, count: 16)
        cairn_xxh128_finish(state, &out)
        return Hex.encode(out)
    }

    /// The digest (hex) of `bytes`.
    static func of(_ bytes: UnsafeRawBufferPointer) -> String {
        var out = [UInt8](repeating: 0, count: 16)
        cairn_xxh128(bytes.baseAddress, bytes.count, &out)
        return Hex.encode(out)
    }
}
