import CairnBase
import Foundation

/// What a delta restore did: every file of the backup compared with the one on disk, block by block (8 KiB, by
/// content, never by size or time), only differing blocks written, files the backup does not have removed.
public struct DeltaSummary: Sendable, Codable, Equatable {
    /// Files of the backup (each compared with the file on disk, or written when there was none).
    public var filesCompared: Int
    /// Bytes read from disk to compare.
    public var bytesCompared: Int64
    /// Bytes written because they differed (or were missing).
    public var bytesRewritten: Int64
    /// Files with at least one block written, or cut or extended to their size in the backup.
    public var filesRewritten: Int
    /// Files that were already exactly as in the backup.
    public var filesUnchanged: Int
    /// Files (and links) removed because the backup does not have them.
    public var filesRemoved: Int
    /// Bundles fetched whole from the repository, and bundles not fetched whole because their files were on disk
    /// already or only some frames of them differed (see ``RestoreOperation/DeltaBundleCheck``).
    public var bundlesFetched: Int
    public var bundlesSkipped: Int
    /// Frames of large files fetched by range instead of their whole bundle (see ``FileFrames``).
    public var framesFetched: Int

    enum CodingKeys: String, CodingKey {
        case filesCompared = "files_compared", bytesCompared = "bytes_compared", bytesRewritten = "bytes_rewritten"
        case filesRewritten = "files_rewritten", filesUnchanged = "files_unchanged", filesRemoved = "files_removed"
        case bundlesFetched = "bundles_fetched", bundlesSkipped = "bundles_skipped"
        case framesFetched = "frames_fetched"
    }

    public init(
        filesCompared: Int, bytesCompared: Int64, bytesRewritten: Int64, filesRewritten: Int, filesUnchanged: Int,
        filesRemoved: Int, bundlesFetched: Int, bundlesSkipped: Int, framesFetched: Int
    ) {
        self.filesCompared = filesCompared
        self.bytesCompared = bytesCompared
        self.bytesRewritten = bytesRewritten
        self.filesRewritten = filesRewritten
        self.filesUnchanged = filesUnchanged
        self.filesRemoved = filesRemoved
        self.bundlesFetched = bundlesFetched
        self.bundlesSkipped = bundlesSkipped
        self.framesFetched = framesFetched
    }

    /// Decodes a summary; one recorded before frames existed has `frames_fetched` 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            filesCompared: try c.decode(Int.self, forKey: .filesCompared),
            bytesCompared: try c.decode(Int64.self, forKey: .bytesCompared),
            bytesRewritten: try c.decode(Int64.self, forKey: .bytesRewritten),
            filesRewritten: try c.decode(Int.self, forKey: .filesRewritten),
            filesUnchanged: try c.decode(Int.self, forKey: .filesUnchanged),
            filesRemoved: try c.decode(Int.self, forKey: .filesRemoved),
            bundlesFetched: try c.decode(Int.self, forKey: .bundlesFetched),
            bundlesSkipped: try c.decode(Int.self, forKey: .bundlesSkipped),
            framesFetched: try c.decodeIfPresent(Int.self, forKey: .framesFetched) ?? 0)
    }
}

/// The counters of a delta restore, shared by the threads that lay out bundles, and the directories the backup
/// has (manifest paths), so that the sweep after the layout keeps them.
public final class DeltaTally: @unchecked Sendable {
    private let lock = NSLock()
    private var changed: Set<String> = []
    private var dirs: Set<String> = []
    private var comparedBytes: Int64 = 0
    private var rewrittenBytes: Int64 = 0
    private var removed = 0
    private var fetched = 0
    private var skipped = 0
    private var frames = 0

    public init() {}

    func bundle(fetched wasFetched: Bool) {
        lock.withLock {
            if wasFetched { fetched += 1 } else { skipped += 1 }
        }
    }

    func fetched(frames n: Int) { lock.withLock { frames += n } }
    func compared(bytes: Int64) { lock.withLock { comparedBytes += bytes } }
    func rewrote(_ path: String, bytes: Int64) {
        lock.withLock {
            rewrittenBytes += bytes; changed.insert(path)
        }
    }
    func resized(_ path: String) { _ = lock.withLock { changed.insert(path) } }
    func directory(_ manifestPath: String) {
        var p = manifestPath
        while p.hasSuffix("/") { p.removeLast() }
        _ = lock.withLock { dirs.insert(p) }
    }
    func hasDirectory(_ manifestPath: String) -> Bool { lock.withLock { dirs.contains(manifestPath) } }
    func removedOne() { lock.withLock { removed += 1 } }

    /// The summary, for a backup of `files` files.
    public func summary(files: Int) -> DeltaSummary {
        lock.withLock {
            DeltaSummary(
                filesCompared: files, bytesCompared: comparedBytes, bytesRewritten: rewrittenBytes,
                filesRewritten: changed.count, filesUnchanged: max(0, files - changed.count), filesRemoved: removed,
                bundlesFetched: fetched, bundlesSkipped: skipped, framesFetched: frames)
        }
    }
}

extension RestoreOperation {
    /// Top-level folders of the data directory whose files a delta restore keeps although the backup does not have
    /// them: the server's own logs (`log_directory`'s default, and its older name), which tell what happened to a
    /// cluster that is being rebuilt.
    public static let deltaKeptFolders: Set<String> = ["log", "pg_log"]

    /// Checks a delta restore's target directory before anything is written: it may be absent or empty; otherwise
    /// it must be a data directory (`global/pg_control` or `PG_VERSION`) of the backup's cluster (the system
    /// identifier in `pg_control`), unless `force`. (A running cluster is refused by ``checkDirectory``.)
    static func checkDeltaTarget(_ dir: String, backup: BackupManifest, force: Bool) throws {
        guard !force else { return }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        guard !entries.isEmpty else { return }
        let hint = "choose the data directory of this cluster, or pass --force to overwrite it with the backup anyway"
        guard let id = controlFileSystemIdentifier(dir) else {
            guard FileManager.default.fileExists(atPath: dir + "/PG_VERSION") else {
                throw CairnError(
                    .restoreDirNotEmpty,
                    "\(dir) is not a PostgreSQL data directory (no global/pg_control, no PG_VERSION), so --delta will not rewrite it",
                    hint: hint)
            }
            return  // an interrupted restore: pg_control not written yet
        }
        guard String(id) == backup.systemIdentifier else {
            throw CairnError(
                .restoreDirNotEmpty,
                "\(dir) belongs to another cluster (system identifier \(id), the backup's is \(backup.systemIdentifier))",
                hint: hint)
        }
    }

    /// The system identifier in `dir/global/pg_control` (its first 8 bytes, in the machine's byte order), nil when
    /// the file is missing or short.
    static func controlFileSystemIdentifier(_ dir: String) -> UInt64? {
        guard let h = FileHandle(forReadingAtPath: dir + "/global/pg_control") else { return nil }
        defer { try? h.close() }
        guard let d = try? h.read(upToCount: 8), d.count == 8 else { return nil }
        return d.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// Prepares a delta restore: checks every target directory (as ``prepare(_:options:)`` does, but a non-empty
    /// one is the point), creates missing ones, and removes the signal files first, so that a directory an
    /// interrupted run leaves never looks restored (the settings are written last).
    static func prepareDelta(_ backup: BackupManifest, options: Options) throws {
        let targets = try targetDirectories(backup, options: options)
        let running = RunningCluster.scan()
        for dir in targets { try checkDirectory(dir, force: options.force, running: running, delta: true) }
        try checkDeltaTarget(options.targetDirectory, backup: backup, force: options.force)
        for dir in targets where !FileManager.default.fileExists(atPath: dir) { try emptyOrCreate(dir) }
        for signal in ["recovery.signal", "standby.signal"] { unlink(options.targetDirectory + "/" + signal) }
        // An earlier restore's WAL spool is Cairn's own cache, not the cluster's: gone before anything is compared.
        WalFetch.removeSpool(options.targetDirectory + "/pg_wal/" + WalFetch.spoolName)
    }

    /// After a delta layout: removes every file and link under the restored roots that the backup's file list
    /// (`final`) does not have, and then every empty folder the backup does not have. Kept: the files of
    /// ``deltaKeptFolders``, `backup_manifest` (written next), the links of the backup's tablespaces in
    /// `pg_tblspc` (their files are swept under the tablespace's own root) and, in a tablespace's folder,
    /// everything but the backup's own version folder (`PG_<major>_<catalog>`: another major's may be there).
    /// `archives` are the backup's (name, tablespace oid), `roots` their restored locations by name.
    static func sweep(
        _ archives: [(name: String, tablespaceOid: UInt32?)], final: PGManifestFiles, roots: [String: String],
        tally: DeltaTally
    ) throws {
        let tablespaces = Set(archives.compactMap { $0.tablespaceOid.map(String.init) })
        for a in archives {
            guard let root = roots[a.name] else { continue }
            let prefix = a.tablespaceOid.map { "pg_tblspc/\($0)/" } ?? ""
            try sweepFolder(root, relative: "", prefix: prefix) { rel, isDirectory in
                let top = !rel.contains("/")
                if prefix.isEmpty {
                    if top && (deltaKeptFolders.contains(rel) || rel == "backup_manifest") { return .keep }
                    if rel.hasPrefix("pg_tblspc/") && tablespaces.contains(String(rel.dropFirst(10))) { return .keep }
                } else if top && !tally.hasDirectory(prefix + rel) {
                    return .keep
                }
                if isDirectory { return tally.hasDirectory(prefix + rel) ? .descend : .descendAndRemoveIfEmpty }
                return final.files[prefix + rel] == nil ? .remove : .keep
            } removed: {
                tally.removedOne()
            }
        }
    }

    enum SweepChoice { case keep, remove, descend, descendAndRemoveIfEmpty }

    /// Walks `folder` without following links, asking `choose` about each entry (its path relative to the root).
    private static func sweepFolder(
        _ folder: String, relative: String, prefix: String,
        choose: (String, Bool) -> SweepChoice, removed: () -> Void
    ) throws {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            try Interruption.check()
            let path = folder + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
            let choice = choose(rel, isDirectory)
            switch choice {
            case .keep: continue
            case .remove:
                guard unlink(path) == 0 || errno == ENOENT else {
                    throw CairnError(.localIO, "cannot remove \(path): \(String(cString: strerror(errno)))")
                }
                removed()
            case .descend, .descendAndRemoveIfEmpty:
                try sweepFolder(path, relative: rel, prefix: prefix, choose: choose, removed: removed)
                if choice == .descendAndRemoveIfEmpty { rmdir(path) }  // fails, harmlessly, when not empty
            }
        }
    }
}
