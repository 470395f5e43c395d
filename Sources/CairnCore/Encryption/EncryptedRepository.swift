import CairnBase
import CairnStorage
import Crypto
import Foundation

/// A repository whose objects are encrypted on the client (see ``ObjectCipher``), wrapping any driver.
///
/// Everything Cairn stores is encrypted — backups, WAL, manifests, drill records, reports, verify state — except
/// what must be readable without the key: `cairn.json` and `keyring.json` (and their twins), lock objects and
/// the probe objects of `cairn check`. Sizes in ``list(prefix:)``, ``head(_:)`` and returned metadata are content
/// sizes (the encryption overhead removed), so callers see the same sizes as on a plain repository.
///
/// The keyring is read on first use with the master key, so a command that never touches encrypted objects
/// (e.g. `cairn init` before the keyring exists) does not need it yet.
public final class EncryptedRepository: Repository, @unchecked Sendable {
    /// The driver that stores the encrypted bytes.
    public let base: any Repository
    public let master: MasterKey
    private let lock = NSLock()
    private var loaded: (keyring: Keyring, keys: [String: [UInt8]])?

    public init(base: any Repository, master: MasterKey) {
        self.base = base
        self.master = master
    }

    public var location: String { base.location }
    /// The wrapped store's identity.
    public var identity: String { base.identity }
    public var capabilities: RepositoryCapabilities { base.capabilities.union(.decrypts) }

    /// Keys stored as they are.
    public static func isPlain(_ key: String) -> Bool {
        Layout.identityKeys.contains(key) || key.hasPrefix(Layout.locksPrefix) || key.hasPrefix(Layout.probePrefix)
    }

    /// The keyring and its data keys (read once).
    public func keyring() throws -> (keyring: Keyring, keys: [String: [UInt8]]) {
        lock.lock()
        defer { lock.unlock() }
        if let loaded { return loaded }
        let r = try Keyring.load(from: base, master: master)
        loaded = (r.keyring, r.keys)
        return loaded!
    }

    /// Creates the keyring when the repository has none (at `cairn init`). Returns true when it wrote one.
    public func createKeyringIfMissing(now: Date) throws -> Bool {
        if try base.head(Keyring.key) != nil || base.head(Keyring.copyKey) != nil {
            _ = try keyring()
            return false
        }
        let k = try Keyring.create(master: master, now: now)
        try k.save(to: base, createOnly: true)
        lock.lock()
        loaded = nil
        lock.unlock()
        _ = try keyring()
        return true
    }

    private func dataKey(_ id: String) throws -> SymmetricKey {
        guard let k = try keyring().keys[id] else {
            throw ObjectCipher.damaged("it names data key \(id), which the keyring does not hold")
        }
        return SymmetricKey(data: k)
    }

    private func plainInfo(_ i: ObjectInfo) -> ObjectInfo {
        guard !EncryptedRepository.isPlain(i.key), let size = ObjectCipher.plainSize(ofStored: i.size) else { return i }
        return ObjectInfo(key: i.key, size: size, lastModified: i.lastModified)
    }

    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        if EncryptedRepository.isPlain(key) { return try base.put(key, bytes, options: options) }
        return try putThroughWriter(key, bytes, options: options)
    }

    public func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter {
        let w = try base.makeWriter(key, options: options)
        if EncryptedRepository.isPlain(key) { return w }
        do {
            let k = try keyring()
            let enc = try ObjectEncryptor(
                dataKey: SymmetricKey(data: k.keys[k.keyring.current]!), keyId: k.keyring.current,
                objectKey: key, emit: { try w.write($0) })
            return EncryptingWriter(base: w, encryptor: enc)
        } catch {
            w.abort()
            throw error
        }
    }

    public func get(
        _ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> ObjectInfo {
        if EncryptedRepository.isPlain(key) { return try base.get(key, range: range, into: sink) }
        do {
            if let range { return try getRange(key, range, into: sink) }
            let dec = ObjectDecryptor(objectKey: key) { try self.dataKey($0) }
            let info = try base.get(key, range: nil) { try dec.feed($0, into: sink) }
            try dec.finish(into: sink)
            return plainInfo(info)
        } catch let f as CipherFailure {
            throw CairnError(
                .dataCorrupt, "object \(key) in \(location) is damaged: \(f.why)", hint: Pipeline.damageHint)
        }
    }

    /// A range of an object's content: its header (the object key) and its stored size (which chunk is the final
    /// one) first, then only the encrypted chunks that hold the range, each authenticated before its part of the
    /// range is passed on.
    private func getRange(
        _ key: String, _ range: ByteRange, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> ObjectInfo {
        let dec = ObjectDecryptor(objectKey: key) { try self.dataKey($0) }
        let info = try base.get(key, range: ByteRange(start: 0, end: Int64(ObjectCipher.headerLength))) {
            try dec.feed($0) { _ in }
        }
        guard let size = ObjectCipher.plainSize(ofStored: info.size) else {
            throw ObjectCipher.damaged("its stored size (\(info.size) bytes) is no encrypted object's (truncated)")
        }
        let end = min(range.end ?? size, size)
        guard range.start < end else { return plainInfo(info) }
        let (chunk, unit) = (Int64(ObjectCipher.chunkSize), Int64(ObjectCipher.chunkSize + ObjectCipher.tagLength))
        let (first, last) = (range.start / chunk, (end - 1) / chunk)
        dec.skip(chunks: UInt64(first))
        var (skip, left) = (Int(range.start - first * chunk), end - range.start)
        func part(_ plain: UnsafeRawBufferPointer) throws {
            let from = min(skip, plain.count)
            let n = Int(min(Int64(plain.count - from), left))
            skip -= from
            left -= Int64(n)
            if n > 0 { try sink(UnsafeRawBufferPointer(rebasing: plain[from..<(from + n)])) }
        }
        let header = Int64(ObjectCipher.headerLength)
        let stored = ByteRange(start: header + first * unit, end: min(header + (last + 1) * unit, info.size))
        _ = try base.get(key, range: stored) { try dec.feed($0, into: part) }
        try dec.finish(into: part, final: last == size / chunk)
        return plainInfo(info)
    }

    public func head(_ key: String) throws -> ObjectInfo? { try base.head(key).map(plainInfo) }

    public func list(prefix: String) throws -> [ObjectInfo] { try base.list(prefix: prefix).map(plainInfo) }

    public func delete(_ keys: [String]) throws { try base.delete(keys) }
}

/// A streaming write that encrypts before the wrapped driver's writer.
final class EncryptingWriter: ObjectWriter {
    private let base: any ObjectWriter
    private let encryptor: ObjectEncryptor

    init(base: any ObjectWriter, encryptor: ObjectEncryptor) {
        self.base = base
        self.encryptor = encryptor
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try encryptor.write(bytes) }

    func finish() throws -> ObjectInfo {
        try encryptor.finish()
        let info = try base.finish()
        return ObjectInfo(key: info.key, size: encryptor.plainBytes, lastModified: info.lastModified)
    }

    func abort() { base.abort() }
}
