import CairnBase
import Foundation

/// What a file-level backup copies from a data directory or tablespace, with the exclusions PostgreSQL's own
/// `BASE_BACKUP` applies (and pgBackRest and WAL-G apply too): server-private runtime state, WAL, temporary
/// files, and the non-init forks of unlogged relations, which recovery recreates empty.
enum DataDirectory {
    /// One tar entry to be: `path` inside the archive, read from `source`.
    struct Entry: Sendable, Equatable {
        enum Kind: Sendable, Equatable {
            case directory
            case symlink(target: String)
            case file(size: Int64)
        }
        var path: String
        var source: String
        var kind: Kind
        var mode: UInt32
        var mtime: Int
    }

    /// Directories kept empty: runtime state rebuilt at start-up (PostgreSQL's `excludeDirContents`).
    static let emptiedDirectories: Set<String> = [
        "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial",
        "pg_snapshots", "pg_subtrans", "pg_wal"
    ]
    /// Files never copied (PostgreSQL's `excludeFiles`); backup_label comes from `pg_backup_stop`.
    static let skippedFiles: Set<String> = [
        "postgresql.auto.conf.tmp", "current_logfiles.tmp", "backup_label",
        "tablespace_map", "backup_manifest", "postmaster.pid", "postmaster.opts",
        "recovery.signal", "standby.signal"
    ]

    /// Scans the data directory. `pg_tblspc/<oid>` links are kept as links; their targets are scanned separately.
    static func scan(dataDirectory root: String) throws -> [Entry] {
        var out: [Entry] = []
        try walk(root, relative: "", depth: 0, into: &out)
        return out
    }

    /// Scans a tablespace: only this server version's subdirectory (`PG_15_<catversion>`), as `BASE_BACKUP` does.
    static func scan(tablespace location: String, majorVersion: Int) throws -> [Entry] {
        var out: [Entry] = []
        for name in try list(location) where name.hasPrefix("PG_\(majorVersion)_") {
            guard let e = try entry(location + "/" + name, relative: name) else { continue }
            out.append(e)
            if e.kind == .directory { try walk(e.source, relative: name, depth: 1, into: &out) }
        }
        return out
    }

    private static func walk(_ dir: String, relative: String, depth: Int, into out: inout [Entry]) throws {
        let names = try list(dir)
        let unlogged = Set(
            names.compactMap { n -> String? in
                n.count > 5 && n.hasSuffix("_init") && n.dropLast(5).allSatisfy { $0.isASCII && $0.isNumber }
                    ? String(n.dropLast(5)) : nil
            })
        for name in names.sorted() {
            let rel = relative.isEmpty ? name : relative + "/" + name
            if skippedFiles.contains(name) && depth == 0 { continue }
            if name.hasPrefix("pg_internal.init") || name.hasPrefix("pgsql_tmp") { continue }
            if !unlogged.isEmpty, !name.hasSuffix("_init"), let node = relfilenode(name), unlogged.contains(node) {
                continue
            }
            guard
                let e = try entry(dir + "/" + name, relative: rel, followLink: !(depth == 1 && relative == "pg_tblspc"))
            else { continue }
            out.append(e)
            guard e.kind == .directory else { continue }
            if depth == 0 && emptiedDirectories.contains(name) {
                if name == "pg_wal" {
                    out.append(
                        Entry(
                            path: "pg_wal/archive_status", source: e.source + "/archive_status", kind: .directory,
                            mode: e.mode, mtime: e.mtime))
                    // PostgreSQL 17+ keeps WAL summaries there; BASE_BACKUP sends the folder empty, and so do we.
                    if FileManager.default.fileExists(atPath: e.source + "/summaries") {
                        out.append(
                            Entry(
                                path: "pg_wal/summaries", source: e.source + "/summaries", kind: .directory,
                                mode: e.mode, mtime: e.mtime))
                    }
                }
                continue
            }
            try walk(e.source, relative: rel, depth: depth + 1, into: &out)
        }
    }

    /// The relation file node a fork or segment file belongs to (`16384`, `16384.1`, `16384_fsm` → `16384`).
    private static func relfilenode(_ name: String) -> String? {
        let digits = name.prefix { $0.isASCII && $0.isNumber }
        let rest = name.dropFirst(digits.count)
        guard !digits.isEmpty, rest.isEmpty || rest.hasPrefix(".") || rest.hasPrefix("_") else { return nil }
        return String(digits)
    }

    /// nil when the file vanished since the directory was listed (a dropped table: recovery replays the drop).
    private static func entry(_ path: String, relative: String, followLink: Bool = true) throws -> Entry? {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return nil }
            throw ioError("inspect \(path)")
        }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            if !followLink {
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(path, &buf, buf.count - 1)
                guard n >= 0 else { throw ioError("read the link \(path)") }
                let target = buf[0..<n].withUnsafeBufferPointer {
                    String(decoding: UnsafeRawBufferPointer($0), as: UTF8.self)
                }
                return Entry(
                    path: relative, source: path, kind: .symlink(target: target), mode: 0o777,
                    mtime: Int(st.st_mtim.tv_sec))
            }
            // Any other link (pg_wal moved elsewhere, a linked configuration file) is copied as what it points at.
            guard stat(path, &st) == 0 else {
                if errno == ENOENT { return nil }
                throw ioError("inspect \(path)")
            }
        }
        let mode = UInt32(st.st_mode & 0o7777)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            return Entry(path: relative, source: path, kind: .directory, mode: mode, mtime: Int(st.st_mtim.tv_sec))
        case S_IFREG:
            return Entry(
                path: relative, source: path, kind: .file(size: Int64(st.st_size)), mode: mode,
                mtime: Int(st.st_mtim.tv_sec))
        default: return nil  // sockets, FIFOs: never part of a cluster's state
        }
    }

    private static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            if errno == ENOENT { return [] }
            throw ioError("list \(dir)")
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(validatingCString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            guard let name else {
                throw CairnError(
                    .backupFailed, "\(dir) holds a file name that is not valid UTF-8",
                    hint: "rename it, or set cluster.backup_method: stream to let PostgreSQL send the files")
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private static func ioError(_ what: String) -> CairnError {
        let e = errno
        return CairnError(
            .localIO, "cannot \(what): \(String(cString: strerror(e)))",
            hint: e == EACCES
                ? "run the backup as the cluster's OS user (postgres), or set cluster.backup_method: stream" : nil)
    }
}
