import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `cairn verify`: checks the repository without PostgreSQL.
///
/// - every object of every committed backup: read in full, zstd checksums, trailer, and size and SHA-256 (stored and
///   content) against the manifest; every manifest's own seal;
/// - every WAL object: read in full against its own trailer (segments must hold a whole segment);
/// - WAL continuity on each timeline from the oldest backup's start to the newest segment, naming every missing
///   segment;
/// - objects no manifest references (interrupted backups, strays).
///
/// It keeps state in `verify/state.json`: an object verified before with the same size and modification time is
/// not read again unless `full` is set. Every problem is collected; the run fails once, at the end.
public enum VerifyOperation {
    public struct Problem: Codable, Sendable, Equatable {
        public enum Severity: String, Codable, Sendable { case error, warning }
        /// `damaged-object`, `missing-object`, `damaged-manifest`, `missing-wal`, `unreferenced`.
        public var kind: String
        public var subject: String
        public var detail: String
        public var severity: Severity
    }

    public struct Result: Codable, Sendable {
        public var started: Date
        public var finished: Date
        public var full: Bool
        public var objectsChecked: Int
        public var objectsSkipped: Int
        public var bytesRead: Int64
        public var backupsChecked: Int
        public var walSegments: Int
        public var missingSegments: [String]
        public var problems: [Problem]

        /// No error-severity problem.
        public var ok: Bool

        enum CodingKeys: String, CodingKey {
            case started, finished, full, problems, ok
            case objectsChecked = "objects_checked"
            case objectsSkipped = "objects_skipped"
            case bytesRead = "bytes_read"
            case backupsChecked = "backups_checked"
            case walSegments = "wal_segments"
            case missingSegments = "missing_segments"
        }

        init(
            started: Date, finished: Date, full: Bool, objectsChecked: Int, objectsSkipped: Int, bytesRead: Int64,
            backupsChecked: Int, walSegments: Int, missingSegments: [String], problems: [Problem]
        ) {
            self.started = started
            self.finished = finished
            self.full = full
            self.objectsChecked = objectsChecked
            self.objectsSkipped = objectsSkipped
            self.bytesRead = bytesRead
            self.backupsChecked = backupsChecked
            self.walSegments = walSegments
            self.missingSegments = missingSegments
            self.problems = problems
            ok = !problems.contains { $0.severity == .error }
        }
    }

    /// What earlier runs verified: key → (size, modification time).
    struct State: Codable {
        struct Entry: Codable, Equatable {
            var size: Int64
            var modified: Date?
        }
        var verified: [String: Entry]
    }

    static let stateKey = Layout.verifyStateKey
    static let logger = Logger(label: "cairn.verify")

    public static func run(
        repo: any Repository, pipeline: Pipeline, full: Bool, parallelism: Int, clock: any WallClock,
        progress: BackupOperation.Progress = .init()
    ) throws -> Result {
        let started = clock.now()
        let catalog = try Catalog.load(from: repo)
        let all = try repo.list(prefix: "")
        let listing = Dictionary(all.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let previous = full ? State(verified: [:]) : previousState(repo)
        let problems = Collector()

        let inventory = inventory(catalog, listing: listing, problems: problems)
        try checkIdentity(repo, catalog: catalog, problems: problems)
        let read = try readObjects(
            inventory.jobs, listing: listing, previous: previous, repo: repo, pipeline: pipeline,
            parallelism: parallelism, problems: problems, progress: progress)
        checkChains(catalog, problems: problems)
        let missing = checkContinuity(catalog, problems: problems)
        checkLineage(catalog, problems: problems)
        checkUnreferenced(all, referenced: inventory.referenced, problems: problems)

        let state = State(verified: read.verified.snapshot.filter { listing[$0.key] != nil })
        _ = try? repo.put(stateKey, try SealedDocument.seal(state), options: .overwrite)
        let result = Result(
            started: started, finished: clock.now(), full: full, objectsChecked: read.counters.checked,
            objectsSkipped: read.counters.skipped, bytesRead: read.counters.bytes,
            backupsChecked: catalog.backups.count,
            walSegments: inventory.walCount, missingSegments: missing.flatMap(\.1).sorted(), problems: problems.all)
        _ = try? repo.put(Layout.verifyRunKey(started: started), try SealedDocument.seal(result), options: .overwrite)
        return result
    }

    /// Incremental chains: a backup whose parent is not a committed backup, or whose chain holds a damaged or
    /// missing object (found by the reads before), cannot be restored: `broken-chain` names it and why.
    static func checkChains(_ catalog: Catalog, problems: Collector) {
        for b in catalog.backups where b.parent != nil {
            if case .failure(let e) = Swift.Result(catching: { try catalog.chain(b.id) }) {
                problems.add(
                    .init(kind: "broken-chain", subject: b.id, detail: describeError(e).message, severity: .error))
            }
        }
        for p in problems.all where p.severity == .error && (p.kind == "damaged-object" || p.kind == "missing-object") {
            guard p.subject.hasPrefix(Layout.backupsPrefix),
                let id = p.subject.split(separator: "/").dropFirst().first.map(String.init)
            else { continue }
            for d in catalog.dependents(of: id) {
                problems.add(
                    .init(
                        kind: "broken-chain", subject: d.id,
                        detail:
                            "builds on backup \(id), whose object \(p.subject) is \(p.kind == "missing-object" ? "missing" : "damaged")",
                        severity: .error))
            }
        }
    }

    /// What earlier runs verified (nothing when the state is missing or damaged).
    static func previousState(_ repo: any Repository) -> State {
        (try? repo.getBytesIfExists(stateKey)).flatMap { $0 }.flatMap {
            try? SealedDocument.open(State.self, from: $0, what: stateKey)
        }
            ?? State(verified: [:])
    }

    /// One object to read in full.
    struct ReadJob {
        var key: String
        /// The size and SHA-256 the manifest records (backup objects).
        var expected: ObjectDigest?
        /// The size the content must have (WAL segments).
        var wholeSegment: Int64?
    }

    /// The objects to read and every key the catalog accounts for.
    struct Inventory {
        var jobs: [ReadJob] = []
        var referenced = Set<String>()
        var walCount = 0
    }

    /// Every committed backup's objects (missing ones are problems), damaged manifests, and every WAL object.
    static func inventory(_ catalog: Catalog, listing: [String: ObjectInfo], problems: Collector) -> Inventory {
        var inv = Inventory()
        for b in catalog.backups {
            inv.referenced.insert(Layout.manifestKey(b.id))
            inv.referenced.insert(Pin.key(b.id))
            for o in b.allObjects {
                inv.referenced.insert(o.key)
                if listing[o.key] == nil {
                    problems.add(
                        .init(
                            kind: "missing-object", subject: o.key,
                            detail: "listed in the manifest of backup \(b.id) but not in the repository",
                            severity: .error))
                } else {
                    inv.jobs.append(ReadJob(key: o.key, expected: o.digest, wholeSegment: nil))
                }
            }
        }
        for id in catalog.damagedManifests {
            problems.add(
                .init(
                    kind: "damaged-manifest", subject: Layout.manifestKey(id),
                    detail: "the manifest fails its own digest: backup \(id) cannot be used", severity: .error))
            for o in catalog.backupObjects[id] ?? [] { inv.referenced.insert(o.key) }
        }
        for (_, segs) in catalog.wal.segments {
            for (_, e) in segs {
                inv.referenced.insert(e.key)
                inv.jobs.append(ReadJob(key: e.key, expected: nil, wholeSegment: catalog.wal.segmentSize))
                inv.walCount += 1
            }
        }
        for e in catalog.wal.others {
            inv.referenced.insert(e.key)
            inv.jobs.append(
                ReadJob(
                    key: e.key, expected: nil,
                    wholeSegment: e.file.fileName.hasSuffix(".partial") ? catalog.wal.segmentSize : nil))
        }
        for tli in catalog.wal.histories.keys {
            let k = Layout.walKey(.history(timeline: tli))
            inv.referenced.insert(k)
            inv.jobs.append(ReadJob(key: k, expected: nil, wholeSegment: nil))
        }
        return inv
    }

    /// cairn.json and its twin: cairn works with one good copy, so a damaged one would go unnoticed until the
    /// other is damaged too. `cairn init` rewrites it from the good one.
    static func checkIdentity(_ repo: any Repository, catalog: Catalog, problems: Collector) throws {
        for key in [RepositoryInfo.key, RepositoryInfo.copyKey] {
            do {
                guard let bytes = try repo.getBytesIfExists(key) else {
                    problems.add(
                        .init(
                            kind: "missing-object", subject: key,
                            detail:
                                "one of the two copies of the repository's identity is missing; `cairn init` rewrites it",
                            severity: .warning))
                    continue
                }
                guard try SealedDocument.open(RepositoryInfo.self, from: bytes, what: key) == catalog.info else {
                    throw CairnError(.repoCorrupt, "it differs from the other copy")
                }
            } catch let e as CairnError where e.code == .repoCorrupt {
                problems.add(
                    .init(
                        kind: "damaged-object", subject: key,
                        detail: "\(e.message); `cairn init` rewrites it from the good copy", severity: .error))
            }
        }
    }

    /// Reads what is new or changed since the last run, in parallel: what is verified now, and the counts.
    static func readObjects(
        _ jobs: [ReadJob], listing: [String: ObjectInfo], previous: State, repo: any Repository,
        pipeline: Pipeline, parallelism: Int, problems: Collector,
        progress: BackupOperation.Progress
    ) throws -> (verified: LockedState, counters: Counters) {
        let verified = LockedState(previous.verified)
        let counters = Counters()
        let pool = WorkerPool(threads: max(1, parallelism), maxQueued: parallelism * 2, name: "cairn-verify")
        let toRead = jobs.sorted(by: { $0.key < $1.key }).filter { job in
            let info = listing[job.key]!
            guard let seen = previous.verified[job.key], seen.size == info.size, seen.modified == info.lastModified
            else { return true }
            counters.skip()
            return false
        }
        progress.onTotal(toRead.reduce(0) { $0 + listing[$1.key]!.size })
        for job in toRead {
            let info = listing[job.key]!
            pool.submit {
                do {
                    let d = try pipeline.load(repo, key: job.key, expected: job.expected) { _ in }
                    if let whole = job.wholeSegment, d.size != whole {
                        throw CairnError(
                            .dataCorrupt, "object \(job.key) holds \(d.size) bytes, not a whole WAL segment (\(whole))")
                    }
                    verified.set(job.key, .init(size: info.size, modified: info.lastModified))
                } catch {
                    verified.remove(job.key)
                    let (code, message, _) = describeError(error)
                    problems.add(
                        .init(
                            kind: code == .repoObjectMissing ? "missing-object" : "damaged-object", subject: job.key,
                            detail: message, severity: .error))
                }
                progress.onBytes(counters.read(info.size))
            }
        }
        try pool.wait()
        return (verified, counters)
    }

    /// WAL continuity on each timeline: every missing range is a problem. Returns the missing names per timeline.
    static func checkContinuity(_ catalog: Catalog, problems: Collector) -> [(UInt32, [String])] {
        let missing = missingSegments(catalog)
        for (tli, names) in missing {
            for range in compact(names, segmentSize: catalog.wal.segmentSize) {
                problems.add(
                    .init(
                        kind: "missing-wal", subject: range, detail: "missing from the archive of timeline \(tli)",
                        severity: .error))
            }
        }
        return missing
    }

    /// Which history is production's: restores refuse to guess while it is ambiguous.
    static func checkLineage(_ catalog: Catalog, problems: Collector) {
        let lineage = catalog.lineage
        if !lineage.ambiguous.isEmpty {
            problems.add(
                .init(
                    kind: "ambiguous-history",
                    subject: lineage.ambiguous.map { "timeline \($0)" }.joined(separator: ", "),
                    detail: lineage.ambiguityError().message, severity: .warning))
        }
    }

    /// Objects no manifest references, outside cairn's identity and records (``Layout/recordPrefixes``).
    static func checkUnreferenced(_ all: [ObjectInfo], referenced: Set<String>, problems: Collector) {
        for o in all where !referenced.contains(o.key) {
            if let p = unreferencedProblem(o.key) { problems.add(p) }
        }
    }

    /// What an object no manifest references means: nothing for cairn's identity and records, an interrupted
    /// backup under `backups/`, a stranger elsewhere.
    static func unreferencedProblem(_ key: String) -> Problem? {
        guard !Layout.isRecordOrIdentity(key) else { return nil }
        let why =
            key.hasPrefix(Layout.backupsPrefix)
            ? "not referenced by any committed manifest (an interrupted backup; `cairn expire` removes it)"
            : "not an object cairn writes"
        return Problem(kind: "unreferenced", subject: key, detail: why, severity: .warning)
    }

    /// Every recorded verify run, oldest first.
    public static func loadRuns(from repo: any Repository) throws -> [Result] {
        try repo.list(prefix: Layout.verifyRunsPrefix).compactMap { o in
            guard let b = try? repo.getBytes(o.key) else { return nil }
            return try? SealedDocument.open(Result.self, from: b, what: o.key)
        }.sorted { $0.started < $1.started }
    }

    /// Missing segment names per timeline: from the oldest backup's start on that timeline (or where the timeline
    /// begins) to its newest segment.
    static func missingSegments(_ catalog: Catalog) -> [(UInt32, [String])] {
        let wal = catalog.wal
        var out: [(UInt32, [String])] = []
        for tli in wal.segments.keys.sorted() {
            let nums = wal.segments[tli]!.keys
            guard let newest = nums.max() else { continue }
            let backupStarts = catalog.backups.filter { $0.kind.isPhysical && $0.start.timeline == tli }.map(
                \.startSegment.number)
            let begins = wal.histories[tli]?.last.map { $0.switchPoint.segment(size: wal.segmentSize) }
            let first = backupStarts.min() ?? begins ?? nums.min()!
            guard first <= newest else { continue }
            let names = (first...newest).filter { wal.segments[tli]?[$0] == nil }
                .map { WALSegment(timeline: tli, number: $0, segmentSize: wal.segmentSize).name }
            if !names.isEmpty { out.append((tli, names)) }
        }
        return out
    }

    /// "A…B (n segments)" ranges of consecutive names.
    static func compact(_ names: [String], segmentSize: Int64) -> [String] {
        let segs = names.compactMap { WALSegment(name: $0, segmentSize: segmentSize) }.sorted()
        var out: [String] = []
        var start: WALSegment?
        var prev: WALSegment?
        func flush() {
            guard let s = start, let p = prev else { return }
            out.append(s == p ? s.name : "\(s.name)…\(p.name) (\(p.number - s.number + 1) segments)")
        }
        for s in segs {
            if let p = prev, p.next == s { prev = s; continue }
            flush()
            start = s
            prev = s
        }
        flush()
        return out
    }

    final class Collector: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Problem] = []
        func add(_ p: Problem) { lock.lock(); items.append(p); lock.unlock() }
        var all: [Problem] {
            lock.lock(); defer { lock.unlock() };
            return items.sorted { ($0.severity.rawValue, $0.subject) < ($1.severity.rawValue, $1.subject) }
        }
    }

    final class Counters: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var checked = 0
        private(set) var skipped = 0
        private(set) var bytes: Int64 = 0
        func skip() { lock.lock(); skipped += 1; lock.unlock() }
        /// Counts an object read; returns the bytes read so far.
        func read(_ n: Int64) -> Int64 { lock.lock(); defer { lock.unlock() }; checked += 1; bytes += n; return bytes }
    }

    final class LockedState: @unchecked Sendable {
        private let lock = NSLock()
        private var map: [String: State.Entry]
        init(_ m: [String: State.Entry]) { map = m }
        func set(_ k: String, _ e: State.Entry) { lock.lock(); map[k] = e; lock.unlock() }
        func remove(_ k: String) { lock.lock(); map[k] = nil; lock.unlock() }
        var snapshot: [String: State.Entry] { lock.lock(); defer { lock.unlock() }; return map }
    }
}
