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
    }

    public static func run(repo: any Repository, clock: any WallClock = SystemClock()) throws -> Result {
        let start = clock.now()
        _ = try repo.list(prefix: RepositoryInfo.key)
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        let key = "probe/\(host)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let payload = Array("cairn probe \(Timestamp.format(clock.now()))".utf8)
        try repo.put(key, payload, options: .createOnly)
        defer { try? repo.delete([key]) }
        let back = try repo.getBytes(key)
        guard back == payload else {
            throw CoreError(.dataCorrupt, "the probe object read back from \(repo.location) differs from what was written",
                            hint: "the storage returns different bytes than it stored; check the endpoint or file system")
        }
        try repo.delete([key])
        return Result(location: repo.location, roundTripMs: Int(clock.now().timeIntervalSince(start) * 1000))
    }
}
