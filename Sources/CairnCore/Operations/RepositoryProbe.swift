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
        let key = "probe/\(host)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let payload = Array("cairn probe \(Timestamp.format(clock.now()))".utf8)
        let before = clock.now()
        try repo.put(key, payload, options: .createOnly)
        let after = clock.now()
        defer { try? repo.delete([key]) }
        let stored = try repo.head(key)?.lastModified
        // Stores truncate to whole seconds: compare with the middle of the request, half a second later.
        let skew = stored.map { $0.addingTimeInterval(0.5).timeIntervalSince(before.addingTimeInterval(after.timeIntervalSince(before) / 2)) }
        let back = try repo.getBytes(key)
        guard back == payload else {
            throw CoreError(.dataCorrupt, "the probe object read back from \(repo.location) differs from what was written",
                            hint: "the storage returns different bytes than it stored; check the endpoint or file system")
        }
        try repo.delete([key])
        return Result(location: repo.location, roundTripMs: Int(clock.now().timeIntervalSince(start) * 1000), skewSeconds: skew)
    }
}
