import CairnBase
import Crypto
import Foundation

/// Cairn's encrypted object envelope (version 1): AES-256-GCM with a random data key per object.
///
/// ```
/// header  "CAIRNENC" · version 0x01 · data-key id (8 ASCII bytes) · nonce (12) · wrapped object key (32) · tag (16)
/// chunks  AES-256-GCM(object key, nonce = 0x000000 · counter (u64 BE) · final flag (0/1)) of 64 KiB of content,
///         each followed by its 16-byte tag; the last chunk (0 … 64 KiB − 1 bytes) carries the final flag
/// ```
/// The object key is random for every object and is wrapped (AES-256-GCM) by one of the repository's data keys
/// (kept in `keyring.json`, itself wrapped by the master key). The wrap authenticates the header and the object's
/// repository key, so a header edit, a swapped object or a wrong key fails the read; each chunk's tag catches a
/// changed byte, and the final flag catches a truncation or appended bytes — every failure is `data.corrupt`.
/// Because the sizes are fixed, the content size follows from the stored size (``plainSize(ofStored:)``).
public enum ObjectCipher {
    static let magic = Array("CAIRNENC".utf8)
    static let version: UInt8 = 1
    static let keyIdLength = 8
    static let headerLength = 8 + 1 + 8 + 12 + 32 + 16
    /// Content bytes per chunk.
    public static let chunkSize = 64 << 10
    static let tagLength = 16

    /// True when `prefix` (an object's first bytes) starts like an encrypted object.
    public static func looksEncrypted(_ prefix: UnsafeRawBufferPointer) -> Bool {
        prefix.count >= magic.count && zip(prefix.prefix(magic.count), magic).allSatisfy { $0 == $1 }
    }

    /// The stored size of an object whose content has `plain` bytes.
    public static func storedSize(ofPlain plain: Int64) -> Int64 {
        Int64(headerLength) + plain + Int64(tagLength) * (plain / Int64(chunkSize) + 1)
    }

    /// The content size of an encrypted object of `stored` bytes (nil when no valid object has that size).
    public static func plainSize(ofStored stored: Int64) -> Int64? {
        let x = stored - Int64(headerLength) - Int64(tagLength)
        guard x >= 0 else { return nil }
        let fullChunks = x / Int64(chunkSize + tagLength)
        let plain = x - Int64(tagLength) * fullChunks
        return storedSize(ofPlain: plain) == stored ? plain : nil
    }

    static func chunkNonce(_ counter: UInt64, final: Bool) throws -> AES.GCM.Nonce {
        var n = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { n[3 + i] = UInt8((counter >> (8 * UInt64(7 - i))) & 0xff) }
        n[11] = final ? 1 : 0
        return try AES.GCM.Nonce(data: n)
    }

    /// What the object-key wrap authenticates: the header fields before it and the object's repository key.
    static func wrapAAD(keyId: [UInt8], objectKey: String) -> [UInt8] {
        magic + [version] + keyId + Array("\u{0}\(objectKey)".utf8)
    }

    static func damaged(_ why: String) -> CipherFailure { CipherFailure(why: why) }
}

/// Why an encrypted object failed to open (the caller names the object and turns this into `data.corrupt`).
struct CipherFailure: Error {
    let why: String
}

/// Encrypts one object's bytes as they stream (see ``ObjectCipher``).
final class ObjectEncryptor {
    private let key: SymmetricKey
    private var buffer = [UInt8]()
    private var counter: UInt64 = 0
    private let emit: (UnsafeRawBufferPointer) throws -> Void
    /// Content bytes encrypted so far.
    private(set) var plainBytes: Int64 = 0

    /// Writes the header through `emit` at once.
    init(
        dataKey: SymmetricKey, keyId: String, objectKey: String, emit: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let idBytes = Array(keyId.utf8)
        guard idBytes.count == ObjectCipher.keyIdLength else {
            throw CairnError(
                .repoCorrupt,
                "the keyring names data key \"\(keyId)\", but data-key ids are \(ObjectCipher.keyIdLength) characters",
                hint: "restore keyring.json from its .copy twin or another copy of the repository")
        }
        key = SymmetricKey(size: .bits256)
        self.emit = emit
        let box = try AES.GCM.seal(
            key.withUnsafeBytes { Array($0) }, using: dataKey,
            authenticating: ObjectCipher.wrapAAD(keyId: idBytes, objectKey: objectKey))
        let header =
            ObjectCipher.magic + [ObjectCipher.version] + idBytes + Array(box.nonce) + Array(box.ciphertext)
            + Array(box.tag)
        buffer.reserveCapacity(ObjectCipher.chunkSize)
        try header.withUnsafeBytes { try emit($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            let take = min(ObjectCipher.chunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(take))
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(take))
            plainBytes += Int64(take)
            if buffer.count == ObjectCipher.chunkSize { try seal(final: false) }
        }
    }

    /// Writes the final chunk (possibly empty).
    func finish() throws { try seal(final: true) }

    private func seal(final: Bool) throws {
        let box = try AES.GCM.seal(buffer, using: key, nonce: try ObjectCipher.chunkNonce(counter, final: final))
        counter += 1
        buffer.removeAll(keepingCapacity: true)
        try box.ciphertext.withUnsafeBytes { try emit($0) }
        try box.tag.withUnsafeBytes { try emit($0) }
    }
}

/// Decrypts one object's bytes as they stream, passing only authenticated content on.
final class ObjectDecryptor {
    private let objectKey: String
    private let keys: (String) throws -> SymmetricKey
    private var key: SymmetricKey?
    private var buffer = [UInt8]()
    private var start = 0
    private var counter: UInt64 = 0

    /// `keys` returns the data key with a given id (throwing when the keyring has none).
    init(objectKey: String, keys: @escaping (String) throws -> SymmetricKey) {
        self.objectKey = objectKey
        self.keys = keys
    }

    private var buffered: Int { buffer.count - start }

    func feed(_ bytes: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        buffer.append(contentsOf: bytes)
        if key == nil {
            guard buffered >= ObjectCipher.headerLength else { return }
            try openHeader()
        }
        let unit = ObjectCipher.chunkSize + ObjectCipher.tagLength
        // A whole chunk is not the final one only when more bytes follow it.
        while buffered > unit {
            try open(count: unit, final: false, into: sink)
        }
        if start >= 256 << 10 || start == buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// Ends the stream: what remains must be exactly the final chunk, or, for a range that ends before the
    /// object's final chunk (`final` false), one whole chunk.
    func finish(into sink: (UnsafeRawBufferPointer) throws -> Void, final: Bool = true) throws {
        guard key != nil else {
            throw ObjectCipher.damaged("it is shorter than the encryption header (truncated)")
        }
        let unit = ObjectCipher.chunkSize + ObjectCipher.tagLength
        guard final ? buffered >= ObjectCipher.tagLength : buffered == unit else {
            throw ObjectCipher.damaged("it ends in the middle of an encrypted chunk (truncated)")
        }
        try open(count: buffered, final: final, into: sink)
    }

    /// For a range: the chunks fed after the header start at chunk `n` (each chunk's nonce holds its number).
    func skip(chunks n: UInt64) { counter += n }

    private func openHeader() throws {
        let h = Array(buffer[start..<(start + ObjectCipher.headerLength)])
        guard Array(h[0..<8]) == ObjectCipher.magic else {
            throw ObjectCipher.damaged("it is not encrypted, but the repository is configured for encryption")
        }
        guard h[8] == ObjectCipher.version else {
            throw ObjectCipher.damaged("its encryption format version \(h[8]) is unknown")
        }
        let idBytes = Array(h[9..<17])
        let id = String(decoding: idBytes, as: UTF8.self)
        let dataKey = try keys(id)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: h[17..<29]), ciphertext: h[29..<61], tag: h[61..<77])
            let raw = try AES.GCM.open(
                box, using: dataKey, authenticating: ObjectCipher.wrapAAD(keyId: idBytes, objectKey: objectKey))
            key = SymmetricKey(data: raw)
        } catch {
            throw ObjectCipher.damaged(
                "its encryption header does not authenticate (changed, or stored under another name)")
        }
        start += ObjectCipher.headerLength
    }

    private func open(count: Int, final: Bool, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let key else { return }
        let c = start
        let tagAt = c + count - ObjectCipher.tagLength
        let plain: Data
        do {
            let box = try AES.GCM.SealedBox(
                nonce: ObjectCipher.chunkNonce(counter, final: final),
                ciphertext: buffer[c..<tagAt], tag: buffer[tagAt..<(c + count)])
            plain = try AES.GCM.open(box, using: key)
        } catch {
            let at = Int64(counter) * Int64(ObjectCipher.chunkSize)
            throw ObjectCipher.damaged(
                final
                    ? "its last encrypted chunk (content offset \(at)) does not authenticate (changed, truncated or extended)"
                    : "its encrypted chunk at content offset \(at) does not authenticate (changed)")
        }
        counter += 1
        start += count
        try plain.withUnsafeBytes { try sink($0) }
    }
}
