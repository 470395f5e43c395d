import CairnBase
import CairnPostgres
import Crypto
import Foundation

/// `backups/<id>/manifest.json`: everything about one backup. Written last, create-only: a backup without its
/// manifest does not exist.
public struct BackupManifest: Codable, Sendable, Equatable {
    public static let currentFormat = 1

    /// `full`, `incr` (changes since the chain's newest backup), `diff` (changes since the newest full) or
    /// `logical` (pg_dump).
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case full, incr, diff, logical

        /// A base backup of the cluster's files (every kind but `logical`).
        public var isPhysical: Bool { self != .logical }
        /// The letter ending a backup id of this kind.
        public var idLetter: Character {
            switch self {
            case .full: "F"
            case .incr: "I"
            case .diff: "D"
            case .logical: "L"
            }
        }
    }

    /// Where the backup starts or stops in WAL and time.
    public struct Point: Codable, Sendable, Equatable {
        public var lsn: LSN
        public var timeline: UInt32
        /// Server time (`now()` on the cluster) at that point.
        public var time: Date
        /// The WAL segment holding `lsn`.
        public var wal: String
    }

    /// One stored object and its integrity.
    public struct Object: Codable, Sendable, Equatable {
        public var key: String
        public var digest: ObjectDigest
        /// Files (tar entries) in a bundle.
        public var files: Int?
        public var firstPath: String?
        public var lastPath: String?
        /// What a bundle holds, entry by entry (bundles written since this field exists): lets a delta restore
        /// skip fetching a bundle whose files are already on disk as the backup has them.
        public var contents: BundleContents?

        enum CodingKeys: String, CodingKey {
            case key, digest, files, contents
            case firstPath = "first_path"
            case lastPath = "last_path"
        }
    }

    /// The entries of one bundle, by their path in the archive's tar stream.
    public struct BundleContents: Codable, Sendable, Equatable {
        /// A regular file or a changed-block entry.
        public struct File: Codable, Sendable, Equatable {
            public var path: String
            /// The entry's size in the tar stream (a changed-block entry's is not the file's).
            public var size: Int64
            /// SHA-256 of a whole file's content, where a backup before ``xxh128`` computed it (the `files` method).
            public var sha256: String?
            /// XXH3-128 (``ContentHash``) of a whole file's content, where the backup computed it (the `files`
            /// method, since frames exist; a file stored as frames has ``frames`` instead).
            public var xxh128: String?
            /// True for a ``BlockDelta`` entry.
            public var blocks: Bool?
            /// A file stored as frames: their places and SHA-256s (then `sha256` is nil).
            public var frames: FileFrames?
        }

        public var files: [File] = []
        public var directories: [String] = []
        /// Entries of any other kind (links, long-name and pax headers): a bundle with any is always fetched.
        public var others = 0

        public init() {}

        /// Adds a tar entry (its header as the bundle holds it).
        mutating func add(_ h: TarHeader) {
            switch h.type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): files.append(File(path: h.name, size: h.size))
            case BlockDelta.typeflag: files.append(File(path: h.name, size: h.size, blocks: true))
            case UInt8(ascii: "5"): directories.append(h.name)
            default: others += 1
            }
        }

        /// Records the XXH3-128 (hex) of the file entry added last.
        mutating func digest(xxh128: String) {
            guard !files.isEmpty else { return }
            files[files.count - 1].xxh128 = xxh128
        }

        /// Records the frames of the file entry added last.
        mutating func frames(_ frames: FileFrames) {
            guard !files.isEmpty else { return }
            files[files.count - 1].frames = frames
        }
    }

    /// An archive of a physical backup: the data directory (`base`) or a tablespace.
    public struct Archive: Codable, Sendable, Equatable {
        /// `base`, or `ts-<oid>`.
        public var name: String
        public var tablespaceOid: UInt32?
        /// The tablespace's location on the backed-up host.
        public var location: String?
        public var objects: [Object]

        enum CodingKeys: String, CodingKey {
            case name, objects, location
            case tablespaceOid = "tablespace_oid"
        }
    }

    public var format: Int
    public var id: String
    public var kind: Kind
    public var systemIdentifier: String
    public var pgVersionNum: Int
    public var walSegmentSize: Int64
    public var start: Point
    public var stop: Point
    public var archives: [Archive]
    /// PostgreSQL's backup_manifest (physical backups).
    public var pgManifest: Object?
    /// Bytes of content (uncompressed) and as stored.
    public var size: Int64
    public var storedSize: Int64
    /// Wall-clock seconds the backup took.
    public var durationSeconds: Double
    public var cairnVersion: String
    public var host: String
    /// Incremental and differential backups: the backup this one stores the changes since (its chain goes on
    /// through the parent's parent to a full backup).
    public var parent: String?
    /// Logical backups: one dump per database.
    public var databases: [LogicalDatabase]?
    /// Logical backups: roles and tablespaces (`pg_dumpall --globals-only`).
    public var globals: Object?
    /// Physical backups (since `cairn find`): which relation each file node belonged to (``RelationMap``).
    public var relations: Object? = nil

    /// One database of a logical backup.
    public struct LogicalDatabase: Codable, Sendable, Equatable {
        public var name: String
        /// The dump (custom format) of the database.
        public var object: Object
        /// Server time when its dump started (its snapshot).
        public var snapshotTime: Date
        /// The database's size on the server when it was dumped.
        public var databaseSize: Int64

        enum CodingKeys: String, CodingKey {
            case name, object
            case snapshotTime = "snapshot_time"
            case databaseSize = "database_size"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, id, kind, start, stop, archives, size, host, databases, globals, parent, relations
        case systemIdentifier = "system_identifier"
        case pgVersionNum = "pg_version_num"
        case walSegmentSize = "wal_segment_size"
        case pgManifest = "pg_manifest"
        case storedSize = "stored_size"
        case durationSeconds = "duration_seconds"
        case cairnVersion = "cairn_version"
    }

    /// Every object the backup consists of (without the manifest itself).
    public var allObjects: [Object] {
        archives.flatMap(\.objects) + (pgManifest.map { [$0] } ?? []) + (databases ?? []).map(\.object)
            + (globals.map { [$0] } ?? []) + (relations.map { [$0] } ?? [])
    }

    /// The segment holding the start LSN.
    public var startSegment: WALSegment {
        WALSegment(timeline: start.timeline, lsn: start.lsn, segmentSize: walSegmentSize)
    }

    /// The segment holding the stop LSN (the last one the backup needs to become consistent).
    public var stopSegment: WALSegment {
        WALSegment(timeline: stop.timeline, lsn: stop.lsn, segmentSize: walSegmentSize)
    }
}
