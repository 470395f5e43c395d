import CairnPostgres
import Foundation

/// Object keys: the repository's layout is part of Cairn's interface (see README "Repository layout").
public enum Layout {
    /// `backups/<id>/` holds one backup's objects; it exists only once `manifest.json` is there.
    public static func backupPrefix(_ id: String) -> String { "backups/\(id)/" }
    /// The commit marker and index of a backup, written last.
    public static func manifestKey(_ id: String) -> String { "backups/\(id)/manifest.json" }
    /// A data bundle of an archive (`base` or `ts-<oid>`): a tar fragment of whole files, compressed.
    public static func bundleKey(_ id: String, archive: String, index: Int) -> String {
        String(format: "backups/%@/%@/%06d.tar.zst", id, archive, index)
    }
    /// A logical backup's dump of one database (custom format).
    public static func dumpKey(_ id: String, database: String) -> String { "backups/\(id)/db/\(escape(database)).dump.zst" }
    /// A logical backup's roles and tablespaces.
    public static func globalsKey(_ id: String) -> String { "backups/\(id)/globals.sql.zst" }

    /// Database names may hold any character: keep letters, digits, `.`, `_`, `-` and percent-encode the rest.
    public static func escape(_ name: String) -> String {
        var out = ""
        for b in name.utf8 {
            let c = Character(Unicode.Scalar(b))
            if b < 0x80 && (c.isLetter || c.isNumber || c == "_" || c == "-" || (c == "." && !out.isEmpty)) {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// PostgreSQL's own backup manifest, kept for pg_verifybackup.
    public static func pgManifestKey(_ id: String) -> String { "backups/\(id)/backup_manifest.zst" }

    /// `wal/<timeline>/<file name>.zst` for segments, partial segments, history and backup-history files.
    public static func walKey(_ file: WALFileName) -> String {
        String(format: "wal/%08X/", file.timeline) + file.fileName + ".zst"
    }

    /// What the repository knows of a timeline's history (production or a copy's): ``TimelineRecord``.
    public static func timelineKey(_ timeline: UInt32) -> String { String(format: "timelines/%08X.json", timeline) }
    public static let timelinesPrefix = "timelines/"

    /// A running job's claim on what it needs (a restore's or drill's WAL, a backup's uncommitted objects): ``Lease``.
    public static func leaseKey(_ id: String) -> String { "leases/\(id).json" }
    public static let leasesPrefix = "leases/"

    /// Parses a WAL key back into its file name; nil for other keys.
    public static func walFile(fromKey key: String) -> WALFileName? {
        guard key.hasPrefix("wal/"), key.hasSuffix(".zst") else { return nil }
        let parts = key.split(separator: "/")
        guard parts.count == 3 else { return nil }
        return WALFileName(String(parts[2].dropLast(4)))
    }

    /// Backup ids: UTC start time and a type letter, e.g. `20261125T153012F` (full) or `…L` (logical).
    public static func backupId(at date: Date, type: Character) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss"
        return f.string(from: date) + String(type)
    }
}
