import CairnPostgres
import Foundation

/// Object keys: the repository's layout is part of Cairn's interface (see README "Repository layout"). This is
/// the only place that spells a key or a prefix.
public enum Layout {
    // MARK: Top-level prefixes

    /// Backups: each one's data objects, manifest and pin.
    public static let backupsPrefix = "backups/"
    /// The WAL archive, one folder per timeline.
    public static let walPrefix = "wal/"
    /// What the repository knows of each timeline's history.
    public static let timelinesPrefix = "timelines/"
    /// Running jobs' claims.
    public static let leasesPrefix = "leases/"
    /// Drill records.
    public static let drillsPrefix = "drills/"
    /// Monthly reports.
    public static let reportsPrefix = "reports/"
    /// Job history (``JobRecord``).
    public static let historyPrefix = "history/"
    /// `cairn verify`'s state and runs.
    public static let verifyPrefix = "verify/"
    /// Locks of scheduled jobs.
    public static let locksPrefix = "locks/"
    /// Probe objects of `cairn check` and `doctor`, deleted right after.
    public static let probePrefix = "probe/"

    /// Prefixes whose objects a manifest or the WAL archive accounts for.
    public static let indexedPrefixes = [backupsPrefix, walPrefix]
    /// Prefixes of cairn's own records, which no manifest references (verify does not report them).
    public static let recordPrefixes = [
        timelinesPrefix, leasesPrefix, drillsPrefix, reportsPrefix, historyPrefix, verifyPrefix,
        locksPrefix, probePrefix
    ]
    /// Every top-level prefix cairn writes under.
    public static let knownPrefixes = indexedPrefixes + recordPrefixes

    // MARK: Identity

    /// The repository's identity (``RepositoryInfo``), and its twin.
    public static let repositoryInfoKey = "cairn.json"
    public static let repositoryInfoCopyKey = "cairn.json.copy"
    /// An encrypted repository's keyring (``Keyring``), and its twin.
    public static let keyringKey = "keyring.json"
    public static let keyringCopyKey = "keyring.json.copy"
    /// The top-level objects outside every prefix: the identity and the keyring, each with its twin.
    public static let identityKeys = [repositoryInfoKey, repositoryInfoCopyKey, keyringKey, keyringCopyKey]

    /// True for a key cairn writes outside the indexed prefixes: an identity object or one of cairn's records.
    public static func isRecordOrIdentity(_ key: String) -> Bool {
        identityKeys.contains(key) || recordPrefixes.contains { key.hasPrefix($0) }
    }

    // MARK: Backups

    /// `backups/<id>/` holds one backup's objects; it exists only once `manifest.json` is there.
    public static func backupPrefix(_ id: String) -> String { backupsPrefix + id + "/" }
    /// The commit marker and index of a backup, written last.
    public static func manifestKey(_ id: String) -> String { backupPrefix(id) + "manifest.json" }
    /// A pinned backup's ``Pin``.
    public static func pinKey(_ id: String) -> String { backupPrefix(id) + "pin.json" }
    /// The archive of the data directory (`base`) or of tablespace `oid` (`ts-<oid>`), a folder of bundles.
    public static func archiveName(tablespace oid: UInt32?) -> String { oid.map { "ts-\($0)" } ?? "base" }
    /// A data bundle of an archive (`base` or `ts-<oid>`): a tar fragment of whole files, compressed.
    public static func bundleKey(_ id: String, archive: String, index: Int) -> String {
        backupPrefix(id) + String(format: "%@/%06d.tar.zst", archive, index)
    }
    /// A logical backup's dump of one database (custom format).
    public static func dumpKey(_ id: String, database: String) -> String {
        backupPrefix(id) + "db/\(escape(database)).dump.zst"
    }
    /// A physical backup's relation map (file node → schema.name per database, ``RelationMap``), for `cairn find`.
    public static func relationMapKey(_ id: String) -> String { backupPrefix(id) + "relations.json.zst" }
    /// A logical backup's roles and tablespaces.
    public static func globalsKey(_ id: String) -> String { backupPrefix(id) + "globals.sql.zst" }

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
    public static func pgManifestKey(_ id: String) -> String { backupPrefix(id) + "backup_manifest.zst" }

    // MARK: WAL and timelines

    /// `wal/<timeline>/<file name>.zst` for segments, partial segments, history and backup-history files.
    public static func walKey(_ file: WALFileName) -> String {
        walPrefix + String(format: "%08X/", file.timeline) + file.fileName + ".zst"
    }

    /// What the repository knows of a timeline's history (production or a copy's): ``TimelineRecord``.
    public static func timelineKey(_ timeline: UInt32) -> String {
        timelinesPrefix + String(format: "%08X.json", timeline)
    }

    // MARK: Records

    /// A running job's claim on what it needs (a restore's or drill's WAL, a backup's uncommitted objects): ``Lease``.
    public static func leaseKey(_ id: String) -> String { leasesPrefix + id + ".json" }
    /// A drill's ``DrillRecord``.
    public static func drillKey(_ id: String) -> String { drillsPrefix + id + ".json" }
    /// One file of a month's report (`yyyy-MM`).
    public static func reportKey(month: String, file: String) -> String { reportsPrefix + month + "/" + file }
    /// The job records of a month (`yyyy-MM`).
    public static func jobRecordsPrefix(month: String) -> String { historyPrefix + month + "/" }
    /// What `cairn verify` verified before.
    public static let verifyStateKey = verifyPrefix + "state.json"
    /// `cairn verify`'s results, one per run.
    public static let verifyRunsPrefix = verifyPrefix + "runs/"
    public static func verifyRunKey(started: Date) -> String {
        verifyRunsPrefix + backupId(at: started, type: "Z") + ".json"
    }
    /// A scheduled job's lock.
    public static func lockKey(_ name: String) -> String { locksPrefix + name + ".json" }
    /// A probe object (`name` unique to the probe).
    public static func probeKey(_ name: String) -> String { probePrefix + name }
    /// Prefixes of the records retention expires by age: drill records, reports, job history, verify runs.
    public static let agedRecordPrefixes = [drillsPrefix, reportsPrefix, historyPrefix, verifyRunsPrefix]

    /// Parses a WAL key back into its file name; nil for other keys.
    public static func walFile(fromKey key: String) -> WALFileName? {
        guard key.hasPrefix(walPrefix), key.hasSuffix(".zst") else { return nil }
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
