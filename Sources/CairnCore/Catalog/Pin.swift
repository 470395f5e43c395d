import CairnBase
import CairnStorage
import Foundation

/// `backups/<id>/pin.json`: a pinned backup (and the WAL it needs) is kept by retention regardless of age.
/// A separate object, so pinning never rewrites the committed manifest.
public struct Pin: Codable, Sendable, Equatable {
    public var reason: String
    public var pinnedAt: Date
    /// `user@host` that pinned it.
    public var by: String

    enum CodingKeys: String, CodingKey {
        case reason, by
        case pinnedAt = "pinned_at"
    }

    public static func key(_ id: String) -> String { Layout.pinKey(id) }

    /// An id that can name a backup folder: no `/`, no `.` or `..`, no control characters (anything else is
    /// simply not found, rather than an invalid object key).
    static func plausible(_ id: String) -> Bool {
        !id.isEmpty && id != "." && id != ".." && !id.contains("/")
            && !id.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// Pins a committed backup (replacing an earlier pin's reason).
    public static func pin(_ id: String, reason: String, repo: any Repository, clock: any WallClock) throws -> Pin {
        guard plausible(id), try repo.head(Layout.manifestKey(id)) != nil else {
            throw CairnError(.backupNotFound, "no committed backup \(id)", hint: "`cairn list` shows the backups")
        }
        let user = ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
        let p = Pin(reason: reason, pinnedAt: clock.now(), by: "\(user)@\(ProcessInfo.processInfo.hostName)")
        try repo.put(key(id), try SealedDocument.seal(p), options: .overwrite)
        return p
    }

    /// Removes a pin; throws when the backup was not pinned.
    public static func unpin(_ id: String, repo: any Repository) throws {
        guard plausible(id), try repo.head(key(id)) != nil else {
            throw CairnError(.backupNotFound, "backup \(id) is not pinned", hint: "`cairn list` shows pinned backups")
        }
        try repo.delete([key(id)])
    }
}
