import CairnBase
import Foundation

/// A restore of an incremental chain, put together in one pass: the backups are laid out newest first, and each
/// block of each file is written once, from the newest backup that holds it. This records, per file of the newest
/// backup's list, what has been written so far and decides what an older backup's entry still adds.
///
/// Memory: one bit per block of each file an incremental stored as blocks (16 KiB per 1 GiB segment, 16 MiB for a
/// 1 TiB database), nothing for files written whole.
public final class ChainFiles: @unchecked Sendable {
    /// What an entry of the backup being laid out does.
    public enum Decision {
        /// Nothing: the file does not exist at the newest backup, or is complete already.
        case skip
        /// The whole file, as a full restore writes it (nothing of it is written yet).
        case whole
        /// Only the blocks not yet written (below the file's final size).
        case blocks(FileBlocks)
    }

    /// The blocks of one file written so far.
    public final class FileBlocks: @unchecked Sendable {
        /// The file's size at the newest backup.
        public let size: Int64
        let count: Int64
        private var bits: [UInt64]
        private let lock = NSLock()

        init(size: Int64) {
            self.size = size
            count = (size + Int64(RelationBlocks.blockSize) - 1) / Int64(RelationBlocks.blockSize)
            bits = [UInt64](repeating: 0, count: Int((count + 63) / 64))
        }

        /// True (and the block counts as written) when `block` is below the final size and not written yet.
        public func claim(_ block: Int64) -> Bool {
            guard block >= 0 && block < count else { return false }
            lock.lock()
            defer { lock.unlock() }
            let (word, bit) = (Int(block / 64), UInt64(1) << UInt64(block % 64))
            if bits[word] & bit != 0 { return false }
            bits[word] |= bit
            return true
        }

        /// The first block no backup of the chain held, if any.
        var firstMissing: Int64? {
            lock.lock()
            defer { lock.unlock() }
            for (i, w) in bits.enumerated() where w != UInt64.max {
                let b = Int64(i * 64 + (~w).trailingZeroBitCount)
                if b < count { return b }
            }
            return nil
        }
    }

    private enum State { case whole, blocks(FileBlocks) }

    /// Each file's final size, by manifest path.
    public let final: PGManifestFiles
    /// Manifest path prefix of each archive (`""` for base, `pg_tblspc/<oid>/` for a tablespace).
    private let prefixes: [String: String]
    private var states: [String: State] = [:]
    private let lock = NSLock()

    /// `final` is the newest backup's file list; `archives` names each archive's tablespace oid (nil for base).
    public init(final: PGManifestFiles, archives: [(name: String, tablespaceOid: UInt32?)]) {
        self.final = final
        var prefixes: [String: String] = [:]
        for a in archives { prefixes[a.name] = a.tablespaceOid.map { "pg_tblspc/\($0)/" } ?? "" }
        self.prefixes = prefixes
    }

    /// The manifest path of an archive's entry.
    public func manifestPath(archive: String, path: String) -> String {
        var p = path
        while p.hasPrefix("./") { p.removeFirst(2) }
        return (prefixes[archive] ?? "") + p
    }

    /// What an entry for `path` of `archive` adds: a whole file (`delta == false`) or a ``BlockDelta``.
    public func decide(archive: String, path: String, delta: Bool) -> Decision {
        let key = manifestPath(archive: archive, path: path)
        guard let file = final.files[key] else { return .skip }
        lock.lock()
        defer { lock.unlock() }
        switch states[key] {
        case .whole: return .skip
        case .blocks(let b): return .blocks(b)
        case nil:
            if !delta {
                states[key] = .whole
                return .whole
            }
            let b = FileBlocks(size: file.size)
            states[key] = .blocks(b)
            return .blocks(b)
        }
    }

    /// Where a file of the final list stands in the layout so far.
    public enum Standing { case notInFinal, untouched, complete, partial }

    /// Where the file at manifest path `key` stands.
    public func standing(_ key: String) -> Standing {
        guard final.files[key] != nil else { return .notInFinal }
        switch lock.withLock({ states[key] }) {
        case nil: return .untouched
        case .whole: return .complete
        case .blocks: return .partial
        }
    }

    /// Counts files found complete on disk (a delta restore's skipped bundle) as written whole.
    public func markComplete(_ keys: [String]) {
        lock.withLock {
            for k in keys where states[k] == nil { states[k] = .whole }
        }
    }

    static let brokenChainHint =
        "run `cairn verify` to find the damaged or missing backup, and restore an older backup or a full one"

    /// After every backup of the chain is laid out: each file of the final list is complete (else
    /// `dataCorrupt` naming the file and the block no backup held) and has its final size. `resized` is told each
    /// file whose size had to change (a delta restore counts it as rewritten).
    public func finish(resized: (String) -> Void = { _ in }, root: (String) -> String) throws {
        for (path, file) in final.files.sorted(by: { $0.key < $1.key }) {
            let state = lock.withLock { states[path] }
            let target = root(path)
            switch state {
            case .blocks(let b):
                if let missing = b.firstMissing {
                    throw CairnError(
                        .dataCorrupt, "the backup chain is incomplete: no backup holds block \(missing) of \(path)",
                        hint: Self.brokenChainHint)
                }
            case .whole:
                var st = stat()
                if stat(target, &st) == 0 && Int64(st.st_size) < file.size {
                    throw CairnError(
                        .dataCorrupt,
                        "the backup chain is incomplete: \(path) has \(st.st_size) of its \(file.size) bytes",
                        hint: Self.brokenChainHint)
                }
            case nil:
                guard file.size == 0 else {
                    throw CairnError(
                        .dataCorrupt, "the backup chain is incomplete: no backup holds \(path)",
                        hint: Self.brokenChainHint)
                }
            }
            let fd = open(target, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            var before = stat()
            if fd >= 0 && fstat(fd, &before) == 0 && Int64(before.st_size) != file.size { resized(target) }
            guard fd >= 0, ftruncate(fd, off_t(file.size)) == 0 else {
                let e = errno
                if fd >= 0 { close(fd) }
                throw CairnError(.localIO, "cannot set the size of \(target): \(String(cString: strerror(e)))")
            }
            close(fd)
        }
    }
}
