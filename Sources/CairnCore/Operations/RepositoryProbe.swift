import CairnBase
import CairnStorage
import Foundation

/// Proves a repository is reachable and writable: lists, writes a probe object create-only, reads it back,
/// and deletes it. Used by `cairn check` and `cairn doctor`.
public enum RepositoryProbe {
    public struct Result: Sendable, Codable {
        public var location: String
        /// Milliseconds for the whole round trip.
        public var roundTripMs: Int
        /// The store's clock minus this host's, in seconds, from the probe object's modification time (whole
        /// seconds, so only skews of a few seconds or more mean anything); nil when the store gives no time.
        public var skewSeconds: Double?
    }

    public static func run(repo: any Repository, clock: any WallClock = SystemClock()) throws -> Result {
        let start = clock.now()
        _ = try repo.list(prefix: RepositoryInfo.key)
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        let key = Layout.probeKey("\(host)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let payload = Array("cairn probe \(Timestamp.format(clock.now()))".utf8)
        let before = clock.now()
        try repo.put(key, payload, options: .createOnly)
        let after = clock.now()
        defer { try? repo.delete([key]) }
        let stored = try repo.head(key)?.lastModified
        // Stores truncate to whole seconds: compare with the middle of the request, half a second later.
        let skew = stored.map {
            $0.addingTimeInterval(0.5).timeIntervalSince(before.addingTimeInterval(after.timeIntervalSince(before) / 2))
        }
        let back = try repo.getBytes(key)
        guard back == payload else {
            throw CairnError(
                .dataCorrupt, "the probe object read back from \(repo.location) differs from what was written",
                hint: "the storage returns different bytes than it stored; check the endpoint or file system")
        }
        try repo.delete([key])
        return Result(
            location: repo.location, roundTripMs: Int(clock.now().timeIntervalSince(start) * 1000), skewSeconds: skew)
    }

    /// Proves the store honours create-only writes (S3: `If-None-Match: *`), on which WAL safety rests: writes
    /// `probe/create-only-<uuid>` create-only, writes it again create-only with other bytes, and expects that
    /// second write to fail with `repo.object-exists` and the first bytes to remain. Removes the probe object.
    /// - Throws: `repo.create-only-unsupported` when the store accepted the second write or replaced the object;
    ///   the driver's errors when a request fails.
    public static func proveCreateOnly(repo: any Repository) throws {
        let key = Layout.probeKey("create-only-\(UUID().uuidString.lowercased())")
        let first = Array("cairn create-only probe: first write".utf8)
        let second = Array("cairn create-only probe: second write, which the store must refuse".utf8)
        try repo.put(key, first, options: .createOnly)
        defer { try? repo.delete([key]) }
        let refused = try secondWriteRefused(repo: repo, key: key, bytes: second)
        let kept = try repo.getBytes(key) == first
        guard refused && kept else {
            let what =
                kept
                ? "accepted a create-only write over an existing object (reporting success without writing)"
                : "replaced an existing object on a create-only write"
            throw CairnError(
                .repoCreateOnlyUnsupported,
                "\(repo.location) \(what), so a WAL file written by another cluster could silently replace production's",
                hint:
                    "use a store that honours conditional writes (If-None-Match: *): AWS S3, MinIO, SeaweedFS, Ceph RGW 18 or later"
            )
        }
        try repo.delete([key])
    }

    /// Writes `bytes` create-only over an existing `key`: true when the store refused with `repo.object-exists`.
    static func secondWriteRefused(repo: any Repository, key: String, bytes: [UInt8]) throws -> Bool {
        do {
            try repo.put(key, bytes, options: .createOnly)
            return false
        } catch let e as any ReportableError where e.code == .repoObjectExists {
            return true
        }
    }
}
