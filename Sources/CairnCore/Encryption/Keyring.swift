import CairnBase
import CairnStorage
import Crypto
import Foundation

/// `keyring.json` (with a `keyring.json.copy` twin): an encrypted repository's data keys, each wrapped
/// (AES-256-GCM) by the master key.
///
/// Objects name the data key that wraps their own random object key, so replacing the master key re-wraps the
/// few data keys here and rewrites no data. Every rotation also adds a fresh data key for new objects, so data
/// written afterwards never depends on a key the old master key could unwrap.
public struct Keyring: Codable, Sendable, Equatable {
    public static let key = Layout.keyringKey
    public static let copyKey = Layout.keyringCopyKey
    public static let cipher = "aes-256-gcm"

    /// One data key.
    public struct Entry: Codable, Sendable, Equatable {
        /// 8 lowercase hex digits, named in every object it protects.
        public var id: String
        public var created: Date
        /// base64 of nonce (12) · wrapped key (32) · tag (16).
        public var wrapped: String
    }

    public var format: Int
    public var cipher: String
    /// ``MasterKey/id`` of the master key that wraps the entries.
    public var masterKeyId: String
    /// The data key new objects use.
    public var current: String
    public var keys: [Entry]
    public var updated: Date

    enum CodingKeys: String, CodingKey {
        case format, cipher, current, keys, updated
        case masterKeyId = "master_key_id"
    }

    init(format: Int, cipher: String, masterKeyId: String, current: String, keys: [Entry], updated: Date) {
        self.format = format
        self.cipher = cipher
        self.masterKeyId = masterKeyId
        self.current = current
        self.keys = keys
        self.updated = updated
    }

    /// A new keyring with one fresh data key.
    public static func create(master: MasterKey, now: Date) throws -> Keyring {
        var k = Keyring(format: 1, cipher: cipher, masterKeyId: master.id, current: "", keys: [], updated: now)
        try k.addDataKey(master: master, now: now)
        return k
    }

    static func aad(_ id: String) -> [UInt8] { Array("cairn data key \(id)".utf8) }

    /// Adds a fresh random data key and makes it current.
    mutating func addDataKey(master: MasterKey, now: Date) throws {
        var id: String
        repeat { id = Hex.encode((0..<4).map { _ in UInt8.random(in: 0...255) }) } while keys.contains { $0.id == id }
        let box = try AES.GCM.seal(MasterKey.generate(), using: master.key, authenticating: Keyring.aad(id))
        keys.append(Entry(id: id, created: now, wrapped: box.combined!.base64EncodedString()))
        current = id
        updated = now
    }

    /// The data keys, unwrapped with `master`.
    /// - Throws: `key.mismatch` when `master` is not the key this keyring is wrapped with; `repo.corrupt` when an
    ///   entry does not authenticate.
    public func unwrap(master: MasterKey, location: String) throws -> [String: [UInt8]] {
        guard masterKeyId == master.id else {
            throw CairnError(
                .keyMismatch,
                "the master key from \(master.source) (id \(master.id)) is not the key that wraps the keyring of \(location) (id \(masterKeyId))",
                hint:
                    "configure the master key this repository was created or last rotated with; `cairn key status` shows the ids"
            )
        }
        var out: [String: [UInt8]] = [:]
        for e in keys {
            do {
                guard let combined = Data(base64Encoded: e.wrapped) else { throw CairnError(.repoCorrupt, "") }
                let raw = try AES.GCM.open(
                    AES.GCM.SealedBox(combined: combined), using: master.key, authenticating: Keyring.aad(e.id))
                out[e.id] = Array(raw)
            } catch {
                throw CairnError(
                    .repoCorrupt, "data key \(e.id) in the keyring of \(location) does not authenticate (changed)",
                    hint:
                        "the keyring's .copy twin is tried automatically; restore keyring.json from a copy of the repository"
                )
            }
        }
        guard out[current] != nil else {
            throw CairnError(
                .repoCorrupt, "the keyring of \(location) names current data key \(current) but does not hold it")
        }
        return out
    }

    /// A keyring holding `dataKeys` (plain, with their entries) wrapped by `master`, plus a fresh current data key.
    init(wrapping dataKeys: [(entry: Entry, key: [UInt8])], master: MasterKey, now: Date) throws {
        self.init(format: 1, cipher: Keyring.cipher, masterKeyId: master.id, current: "", keys: [], updated: now)
        for (e, raw) in dataKeys.sorted(by: { ($0.entry.created, $0.entry.id) < ($1.entry.created, $1.entry.id) }) {
            let box = try AES.GCM.seal(raw, using: master.key, authenticating: Keyring.aad(e.id))
            keys.append(Entry(id: e.id, created: e.created, wrapped: box.combined!.base64EncodedString()))
        }
        try addDataKey(master: master, now: now)
    }

    /// Reads the keyring that `master` opens: `keyring.json`, else its copy (the two differ only while a rotation
    /// is interrupted). Returns the keyring, its data keys, and whether the twins disagree.
    public static func load(
        from repo: any Repository, master: MasterKey
    ) throws -> (keyring: Keyring, keys: [String: [UInt8]], twinsDiffer: Bool) {
        var found: [Keyring] = []
        var firstError: (any Error)?
        for key in [key, copyKey] {
            do {
                guard let bytes = try repo.getBytesIfExists(key) else { continue }
                found.append(try SealedDocument.open(Keyring.self, from: bytes, what: "\(key) in \(repo.location)"))
            } catch let e as CairnError where e.code == .repoCorrupt {
                firstError = firstError ?? e
            }
        }
        if found.isEmpty {
            if let firstError { throw firstError }
            throw CairnError(
                .configInvalid,
                "repository \(repo.location) is not encrypted (it has no keyring.json), but repository.encryption is configured",
                hint:
                    "remove repository.encryption from cairn.yaml to use this repository, or point cairn at a new location and run `cairn init` to create an encrypted one"
            )
        }
        var mismatch: (any Error)?
        for k in found {
            do {
                return (
                    k, try k.unwrap(master: master, location: repo.location), found.count == 2 && found[0] != found[1]
                )
            } catch let e as CairnError where e.code == .keyMismatch || e.code == .repoCorrupt {
                mismatch = mismatch ?? e
            }
        }
        throw mismatch!
    }

    /// Writes both twins (`keyring.json` first).
    public func save(to repo: any Repository, createOnly: Bool = false) throws {
        let bytes = try SealedDocument.seal(self)
        try repo.put(Keyring.key, bytes, options: createOnly ? .createOnly : .overwrite)
        try repo.put(Keyring.copyKey, bytes, options: .overwrite)
    }
}
