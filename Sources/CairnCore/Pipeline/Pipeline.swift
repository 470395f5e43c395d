import CairnBase
import CairnStorage
import Crypto
import Foundation

/// The transfer pipeline: content → SHA-256 → zstd → repository, and back with verification.
///
/// Streamed objects take bounded memory whatever their size: one zstd context (a few MiB at the default levels;
/// up to 2 × the 8 MiB window at level 19), a 128 KiB output buffer, and the repository writer's buffers (local:
/// none; S3: `(concurrency + 1) × partSize`, 40 MiB at the defaults); a content already in memory (a WAL file) is
/// compressed into one buffer next to it. Nothing is read twice: the digests are computed as the bytes pass.
public struct Pipeline: Sendable {
    /// zstd level (1…19).
    public var level: Int32
    /// zstd worker threads (0 = on the calling thread).
    public var workers: Int32

    public init(level: Int32 = 3, workers: Int32 = 0) {
        self.level = level
        self.workers = workers
    }

    /// Starts storing an object. Write the content, then `finish()` (or `abort()`). Without `contentDigest`
    /// the object records no SHA-256 of its content (format 3, for backup bundles; see ``ObjectFormat``).
    public func beginStore(
        _ repo: any Repository, key: String, options: PutOptions, contentDigest: Bool = true
    ) throws -> StoreStream {
        let writer = try repo.makeWriter(key, options: options)
        do {
            return try StoreStream(
                writer: writer, compressor: ZstdCompressor(level: level, workers: workers), key: key,
                contentDigest: contentDigest)
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Stores a whole in-memory content (a WAL file, a manifest) with one `put`: compressed into one frame in one
    /// pass, which costs zstd 15–25 % less CPU than streaming it. Without `contentDigest` the object
    /// records no SHA-256 of its content (format 3; see ``ObjectFormat``).
    @discardableResult
    public func store(
        _ repo: any Repository, key: String, bytes: [UInt8], options: PutOptions,
        contentDigest: Bool = true
    ) throws -> ObjectDigest {
        let sha = contentDigest ? Array(SHA256.hash(data: bytes)) : nil
        var object = try bytes.withUnsafeBytes {
            try ZstdCompressor(level: level, workers: workers).compressWhole($0, reserve: ObjectFormat.trailerLength)
        }
        // The trailer records the digest of the frame; the manifest digest covers the trailer too.
        var stored = SHA256()
        stored.update(data: object)
        let trailer = ObjectFormat.trailer(
            size: Int64(bytes.count), sha256: sha, storedSHA256: Array(stored.finalize()))
        stored.update(data: trailer)
        object += trailer
        try repo.put(key, object, options: options)
        return ObjectDigest(
            size: Int64(bytes.count), sha256: sha.map { Hex.encode($0) } ?? "", storedSize: Int64(object.count),
            storedSHA256: Hex.encode(stored.finalize()))
    }

    /// Stores everything read from a file descriptor until end of file.
    @discardableResult
    public func store(_ repo: any Repository, key: String, fd: Int32, options: PutOptions) throws -> ObjectDigest {
        let s = try beginStore(repo, key: key, options: options)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        do {
            while true {
                let n = read(fd, buf.baseAddress, buf.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw CairnError(.localIO, "read failed while storing \(key): \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                try s.write(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            }
            return try s.finish()
        } catch {
            s.abort()
            throw error
        }
    }

    /// Streams an object's content to `sink`, verifying the zstd checksums, the trailer and, when given, the
    /// expected digest. Throws `data.corrupt` (after the content was passed to the sink: callers write to a
    /// temporary place and commit only on success).
    ///
    /// With `expected` and `hashContent: false` (restores), the content's SHA-256 is not recomputed: the stored
    /// bytes must match the manifest's SHA-256, and the same bytes decode, under zstd's own content checksum,
    /// to the content whose digest the manifest records. That saves a pass over every restored byte.
    @discardableResult
    public func load(
        _ repo: any Repository, key: String, expected: ObjectDigest? = nil, hashContent: Bool = true,
        into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> ObjectDigest {
        let hashContent = (hashContent || expected == nil) && expected?.sha256.isEmpty != true
        let d = try ZstdDecompressor()
        var plain = SHA256()
        var stored = SHA256()
        var plainSize: Int64 = 0
        var storedSize: Int64 = 0
        // The last bytes (where the trailer is) are held back; everything before them goes into `beforeTrailer`.
        var tail = [UInt8]()
        var beforeTrailer = SHA256()
        tail.reserveCapacity(ObjectFormat.trailerLength * 2)
        try repo.get(key, range: nil) { chunk in
            if storedSize == 0, ObjectCipher.looksEncrypted(chunk), !repo.capabilities.contains(.decrypts) {
                throw Pipeline.keyMissing(key, in: repo)
            }
            stored.update(bufferPointer: chunk)
            storedSize += Int64(chunk.count)
            let release = max(0, tail.count + chunk.count - ObjectFormat.trailerLength)
            let fromTail = min(release, tail.count)
            tail.withUnsafeBytes {
                beforeTrailer.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<fromTail]))
            }
            beforeTrailer.update(bufferPointer: UnsafeRawBufferPointer(rebasing: chunk[0..<(release - fromTail)]))
            tail.removeFirst(fromTail)
            tail.append(contentsOf: chunk[(release - fromTail)...])
            do {
                try d.decompress(chunk) { out in
                    if hashContent { plain.update(bufferPointer: out) }
                    plainSize += Int64(out.count)
                    try sink(out)
                }
            } catch let e as ZstdFailure {
                throw Pipeline.damaged(key, in: repo, e.why)
            }
        }
        // Without hashing, the content digest is the manifest's, proven by the stored-bytes check below.
        let digest = ObjectDigest(
            size: plainSize, sha256: hashContent ? Hex.encode(plain.finalize()) : expected?.sha256 ?? "",
            storedSize: storedSize, storedSHA256: Hex.encode(stored.finalize()))
        try checkLoaded(
            digest, atFrameBoundary: d.atFrameBoundary, tail: tail, beforeTrailer: Array(beforeTrailer.finalize()),
            expected: expected
        ) {
            Pipeline.damaged(key, in: repo, $0)
        }
        return digest
    }

    /// The checks after an object was read: whole zstd frames, a trailer whose size and digests match what was read
    /// (`beforeTrailer`: the SHA-256 of every byte before the trailer), and the manifest's record (`expected`).
    private func checkLoaded(
        _ digest: ObjectDigest, atFrameBoundary: Bool, tail: [UInt8], beforeTrailer: [UInt8],
        expected: ObjectDigest?, damaged: (String) -> CairnError
    ) throws {
        guard atFrameBoundary else { throw damaged("it ends in the middle of a compressed frame (truncated)") }
        guard let (trailer, length) = ObjectFormat.parseTrailer(tail) else {
            throw damaged("its integrity trailer is missing (truncated or not a cairn object)")
        }
        guard trailer.size == digest.size, trailer.sha256.map({ Hex.encode($0) == digest.sha256 }) ?? true else {
            throw damaged("its content does not match the digest recorded when it was stored")
        }
        if let recorded = trailer.storedSHA256, length == tail.count, beforeTrailer != recorded {
            throw damaged("its compressed bytes do not match the digest recorded when it was stored")
        }
        if let expected {
            guard expected.storedSize == digest.storedSize, expected.storedSHA256 == digest.storedSHA256,
                expected.size == digest.size, expected.sha256.isEmpty || expected.sha256 == digest.sha256
            else {
                throw damaged("it differs from the size and SHA-256 recorded in the manifest")
            }
        }
    }

    static let keyHint = "set repository.encryption.key_file (or key_env) in cairn.yaml to the repository's master key"

    /// The error for a damaged object, saying why.
    static func damaged(_ key: String, in repo: any Repository, _ why: String) -> CairnError {
        CairnError(.dataCorrupt, "object \(key) in \(repo.location) is damaged: \(why)", hint: damageHint)
    }

    /// The error for an encrypted object read without a master key.
    static func keyMissing(_ key: String, in repo: any Repository) -> CairnError {
        CairnError(
            .keyMissing, "object \(key) in \(repo.location) is encrypted, but no master key is configured",
            hint: keyHint)
    }
    static let damageHint =
        "run `cairn verify` to list every damaged object; restore from another backup or copy of the repository"
}

/// One object being stored (see ``Pipeline/beginStore(_:key:options:)``).
public final class StoreStream {
    private let writer: any ObjectWriter
    private let compressor: ZstdCompressor
    private var plain = SHA256()
    private var stored = SHA256()
    /// The stored bytes of the current frame, while they are hashed (``endFrame(hashNext:)``).
    private var frameStored: SHA256?
    private var plainSize: Int64 = 0
    private var storedSize: Int64 = 0
    private var done = false
    private let contentDigest: Bool
    /// The object key.
    public let key: String

    init(writer: any ObjectWriter, compressor: ZstdCompressor, key: String, contentDigest: Bool = true) {
        self.writer = writer
        self.compressor = compressor
        self.key = key
        self.contentDigest = contentDigest
    }

    deinit { if !done { writer.abort() } }

    /// Bytes of content written so far.
    public var bytesIn: Int64 { plainSize }

    private func emit(_ out: UnsafeRawBufferPointer) throws {
        stored.update(bufferPointer: out)
        frameStored?.update(bufferPointer: out)
        storedSize += Int64(out.count)
        try writer.write(out)
    }

    /// Adds content.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if contentDigest { plain.update(bufferPointer: bytes) }
        plainSize += Int64(bytes.count)
        try compressor.compress(bytes) { try emit($0) }
    }

    /// Ends the zstd frame being written, so that what follows starts a new one that decodes on its own (see
    /// ``FileFrames``). Returns the stored offset where the next frame starts and, when the ended frame's stored
    /// bytes were being hashed, their SHA-256; with `hashNext` the next frame's are.
    func endFrame(hashNext: Bool) throws -> (end: Int64, stored: SHA256.Digest?) {
        try compressor.finish { try emit($0) }
        let digest = frameStored?.finalize()
        frameStored = hashNext ? SHA256() : nil
        return (storedSize, digest)
    }

    /// Ends the stream, writes the trailer and commits the object.
    public func finish() throws -> ObjectDigest {
        do {
            try compressor.finish { try emit($0) }
            let sha = contentDigest ? Array(plain.finalize()) : nil
            try ObjectFormat.trailer(size: plainSize, sha256: sha, storedSHA256: Array(stored.finalize()))
                .withUnsafeBytes { try emit($0) }
            _ = try writer.finish()
            done = true
            return ObjectDigest(
                size: plainSize, sha256: sha.map { Hex.encode($0) } ?? "", storedSize: storedSize,
                storedSHA256: Hex.encode(stored.finalize()))
        } catch {
            abort()
            throw error
        }
    }

    /// Discards the object.
    public func abort() {
        guard !done else { return }
        done = true
        writer.abort()
    }
}
