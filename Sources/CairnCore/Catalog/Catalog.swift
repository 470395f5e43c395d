import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// What the WAL archive holds, indexed for planning.
public struct WALArchive: Sendable {
    /// One archived file.
    public struct Entry: Sendable, Equatable {
        public var file: WALFileName
        public var key: String
        public var storedSize: Int64
        /// When it was stored (an upper bound for the commit times it contains).
        public var stored: Date?
    }

    public var segmentSize: Int64
    /// Full segments by timeline and segment number.
    public var segments: [UInt32: [UInt64: Entry]] = [:]
    /// Timeline history by timeline (the parsed `0000000N.history` files).
    public var histories: [UInt32: [TimelineSwitch]] = [:]
    /// When each history file was stored: about when its timeline began (the promotion archives it at once).
    public var historyStored: [UInt32: Date] = [:]
    /// Other files (partial segments, backup history files).
    public var others: [Entry] = []

    public init(segmentSize: Int64) { self.segmentSize = segmentSize }

    public func entry(_ s: WALSegment) -> Entry? { segments[s.timeline]?[s.number] }

    /// Every timeline with segments or a history file.
    public var timelines: [UInt32] { Set(segments.keys).union(histories.keys).sorted() }

    /// Contiguous runs of segment numbers on a timeline.
    public func runs(timeline: UInt32) -> [ClosedRange<UInt64>] {
        let nums = (segments[timeline] ?? [:]).keys.sorted()
        var out: [ClosedRange<UInt64>] = []
        for n in nums {
            if let last = out.last, last.upperBound + 1 == n {
                out[out.count - 1] = last.lowerBound...n
            } else {
                out.append(n...n)
            }
        }
        return out
    }

}

/// A snapshot of a repository's committed backups and WAL archive: the input of every planner.
public struct Catalog: Sendable {
    public var info: RepositoryInfo
    /// Committed backups (those with a valid manifest), oldest first.
    public var backups: [BackupManifest]
    /// Backup directories without a valid manifest: in progress, interrupted, or damaged.
    public var uncommitted: [String]
    /// Manifests that exist but fail their own digest.
    public var damagedManifests: [String]
    public var wal: WALArchive
    /// Pins of committed backups, by backup id.
    public var pins: [String: Pin]
    /// Every object under `backups/<id>/`, by backup id (committed or not).
    public var backupObjects: [String: [ObjectInfo]]
    /// Drill records, reports, job history and verify runs (`drills/`, `reports/`, `history/`, `verify/runs/`).
    public var records: [ObjectInfo] = []
    /// What the repository knows of each timeline (production or a copy's), by timeline.
    public var timelineRecords: [UInt32: TimelineRecord] = [:]
    /// Claims of running jobs (backups, restores, drills) on what they need, expired ones included.
    public var leases: [Lease] = []

    public init(
        info: RepositoryInfo, backups: [BackupManifest], uncommitted: [String] = [], damagedManifests: [String] = [],
        wal: WALArchive, pins: [String: Pin] = [:], backupObjects: [String: [ObjectInfo]] = [:]
    ) {
        self.info = info
        self.backups = backups.sorted { $0.start.time < $1.start.time }
        self.uncommitted = uncommitted
        self.damagedManifests = damagedManifests
        self.wal = wal
        self.pins = pins
        self.backupObjects = backupObjects
    }

    /// Reads the catalog: lists `backups/` and `wal/`, opens every manifest and history file.
    public static func load(from repo: any Repository) throws -> Catalog {
        let info = try RepositoryInfo.require(from: repo)
        var objects: [String: [ObjectInfo]] = [:]
        for o in try repo.list(prefix: Layout.backupsPrefix) {
            let parts = o.key.split(separator: "/")
            guard parts.count >= 3 else { continue }
            objects[String(parts[1]), default: []].append(o)
        }
        var backups: [BackupManifest] = []
        var uncommitted: [String] = []
        var damaged: [String] = []
        var pins: [String: Pin] = [:]
        for (id, objs) in objects.sorted(by: { $0.key < $1.key }) {
            guard objs.contains(where: { $0.key == Layout.manifestKey(id) }) else { uncommitted.append(id); continue }
            do {
                let m = try SealedDocument.open(
                    BackupManifest.self, from: try repo.getBytes(Layout.manifestKey(id)),
                    what: "manifest of backup \(id)")
                backups.append(m)
            } catch let e as CairnError where e.code == .repoCorrupt || e.code == .dataCorrupt {
                // A changed sealed manifest fails its digest; a changed encrypted one fails to decrypt.
                damaged.append(id)
                continue
            }
            if objs.contains(where: { $0.key == Pin.key(id) }), let b = try repo.getBytesIfExists(Pin.key(id)) {
                pins[id] = try? SealedDocument.open(Pin.self, from: b, what: "pin of backup \(id)")
            }
        }
        var wal = WALArchive(segmentSize: info.walSegmentSize)
        for o in try repo.list(prefix: Layout.walPrefix) {
            guard let f = Layout.walFile(fromKey: o.key) else { continue }
            let e = WALArchive.Entry(file: f, key: o.key, storedSize: o.size, stored: o.lastModified)
            switch f {
            case .segment(let name):
                guard let s = WALSegment(name: name, segmentSize: info.walSegmentSize) else { continue }
                wal.segments[s.timeline, default: [:]][s.number] = e
            case .history(let tli):
                var text = [UInt8]()
                try Pipeline().load(repo, key: o.key) { text.append(contentsOf: $0) }
                wal.histories[tli] = TimelineSwitch.parseHistory(String(decoding: text, as: UTF8.self))
                wal.historyStored[tli] = o.lastModified
            default:
                wal.others.append(e)
            }
        }
        var c = Catalog(
            info: info, backups: backups, uncommitted: uncommitted, damagedManifests: damaged, wal: wal,
            pins: pins, backupObjects: objects)
        for prefix in Layout.agedRecordPrefixes { c.records += try repo.list(prefix: prefix) }
        c.timelineRecords = try loadTimelineRecords(repo)
        c.leases = try Lease.all(in: repo)
        return c
    }

    /// Every readable `timelines/<TLI>.json`; a damaged one is left out (the timeline is then undecided).
    static func loadTimelineRecords(_ repo: any Repository) throws -> [UInt32: TimelineRecord] {
        var out: [UInt32: TimelineRecord] = [:]
        for o in try repo.list(prefix: Layout.timelinesPrefix) {
            guard let b = try repo.getBytesIfExists(o.key),
                let r = try? SealedDocument.open(TimelineRecord.self, from: b, what: o.key),
                o.key == Layout.timelineKey(r.timeline)
            else { continue }
            out[r.timeline] = r
        }
        return out
    }

    /// Which history is production's (see ``Lineage``).
    public var lineage: Lineage { Lineage(self) }

    public func backup(_ id: String) -> BackupManifest? { backups.first { $0.id == id } }

    /// The chain a backup restores from, its full backup first and `id` last (just `id` for a full or logical
    /// backup). Throws `dataCorrupt` when a link is not a committed backup.
    public func chain(_ id: String) throws -> [BackupManifest] {
        guard var b = backup(id) else { throw CairnError(.backupNotFound, "no committed backup \(id)") }
        var chain = [b]
        while let parent = b.parent {
            guard let p = backup(parent), !chain.contains(where: { $0.id == parent }) else {
                throw CairnError(
                    .dataCorrupt,
                    "backup \(id) needs backup \(parent), which is \(damagedManifests.contains(parent) ? "damaged" : "not in the repository")",
                    hint: "restore an older backup, or take a new full backup (cairn backup --type full)")
            }
            chain.insert(p, at: 0)
            b = p
        }
        return chain
    }

    /// Bytes stored by `id`'s whole chain (what its restore reads); nil when a link is missing.
    public func chainStoredSize(_ id: String) -> Int64? {
        (try? chain(id)).map { $0.reduce(0) { $0 + $1.storedSize } }
    }

    /// Physical backups whose whole chain is in the repository, oldest first: what a restore can start from.
    public var restorableBackups: [BackupManifest] {
        backups.filter { $0.kind.isPhysical && (try? chain($0.id)) != nil }
    }

    /// The backups of `id`'s chain that depend on it: those whose chain includes it (not `id` itself).
    public func dependents(of id: String) -> [BackupManifest] {
        backups.filter { b in
            var parent = b.parent
            var seen = 0
            while let p = parent, seen < backups.count {
                if p == id { return true }
                parent = backup(p)?.parent
                seen += 1
            }
            return false
        }
    }
}
