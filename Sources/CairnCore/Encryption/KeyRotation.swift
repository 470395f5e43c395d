import CairnBase
import CairnStorage
import Foundation

/// `cairn key rotate`: re-wraps an encrypted repository's data keys under a new master key. No data object is
/// read or rewritten; only `keyring.json` and its twin change.
///
/// Safe to interrupt and to run again: it gathers the data keys of every keyring twin that the old *or* the new
/// master key opens (an interrupted rotation leaves one twin under each), so no data key is ever dropped, then
/// writes both twins under the new key and reads them back. The caller holds the repository's `key` lock so that
/// two rotations never race.
public enum KeyRotation {
    public struct Result: Codable, Sendable {
        public var location: String
        public var oldMasterKeyId: String
        public var newMasterKeyId: String
        /// Data keys re-wrapped (the new one not counted).
        public var rewrapped: Int
        /// The fresh data key new objects use from now on.
        public var currentDataKey: String
        /// True when a previous, interrupted rotation to the same new key was completed.
        public var resumed: Bool

        enum CodingKeys: String, CodingKey {
            case location, rewrapped, resumed
            case oldMasterKeyId = "old_master_key_id"
            case newMasterKeyId = "new_master_key_id"
            case currentDataKey = "current_data_key"
        }
    }

    /// Rotates `repo` (the plain driver, not an ``EncryptedRepository``) from `old` to `new`.
    public static func run(repo: any Repository, old: MasterKey, new: MasterKey, now: Date) throws -> Result {
        guard old.id != new.id else {
            throw CairnError(
                .usage, "the new master key (\(new.source)) is the key already configured (id \(old.id))",
                hint: "create a new one with `cairn key generate --output FILE`")
        }
        var pool: [String: (entry: Keyring.Entry, key: [UInt8])] = [:]
        var seen: [String] = []
        var resumed = false
        var firstError: (any Error)?
        for twin in [Keyring.key, Keyring.copyKey] {
            guard let bytes = try repo.getBytesIfExists(twin) else { continue }
            do {
                let k = try SealedDocument.open(Keyring.self, from: bytes, what: "\(twin) in \(repo.location)")
                seen.append(k.masterKeyId)
                for master in [old, new] where master.id == k.masterKeyId {
                    let plain = try k.unwrap(master: master, location: repo.location)
                    for e in k.keys { pool[e.id] = (e, plain[e.id]!) }
                    if master.id == new.id { resumed = true }
                }
            } catch let e as CairnError where e.code == .repoCorrupt {
                firstError = firstError ?? e
            }
        }
        guard !pool.isEmpty else {
            if seen.isEmpty, let firstError { throw firstError }
            if seen.isEmpty {
                throw CairnError(
                    .configInvalid, "repository \(repo.location) is not encrypted (it has no keyring.json)",
                    hint: "only an encrypted repository has keys to rotate")
            }
            throw CairnError(
                .keyMismatch,
                "neither the configured master key (id \(old.id)) nor the new one (id \(new.id)) opens the keyring of \(repo.location) (wrapped by \(Set(seen).sorted().joined(separator: ", ")))",
                hint:
                    "configure the master key this repository was created or last rotated with; `cairn key status` shows the ids"
            )
        }
        let keyring = try Keyring(wrapping: Array(pool.values), master: new, now: now)
        try keyring.save(to: repo)
        // Read back what was written: both twins must open with the new key and hold every data key.
        for twin in [Keyring.key, Keyring.copyKey] {
            let k = try SealedDocument.open(
                Keyring.self, from: try repo.getBytes(twin), what: "\(twin) in \(repo.location)")
            let keys = try k.unwrap(master: new, location: repo.location)
            guard Set(keys.keys).isSuperset(of: pool.keys) else {
                throw CairnError(
                    .repoIO, "\(twin) in \(repo.location) did not read back as written; run `cairn key rotate` again")
            }
        }
        return Result(
            location: repo.location, oldMasterKeyId: old.id, newMasterKeyId: new.id, rewrapped: pool.count,
            currentDataKey: keyring.current, resumed: resumed)
    }
}
