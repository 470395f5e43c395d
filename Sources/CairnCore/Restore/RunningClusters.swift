import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The PostgreSQL servers running on this host, found without a connection: a postmaster `chdir`s into its data
/// directory, whose `postmaster.pid` names it on its first line. `restore` uses this to refuse target directories
/// that belong to a live cluster (its data directory or one of its tablespaces).
public struct RunningCluster: Sendable, Equatable {
    /// The postmaster's process id.
    public var pid: Int32
    /// The data directory (real path).
    public var dataDirectory: String
    /// The real paths the data directory's `pg_tblspc/*` links point at.
    public var tablespaces: [String]

    public init(pid: Int32, dataDirectory: String, tablespaces: [String]) {
        self.pid = pid
        self.dataDirectory = dataDirectory
        self.tablespaces = tablespaces
    }

    /// Every directory of this cluster: the data directory and its tablespace locations.
    public var directories: [String] { [dataDirectory] + tablespaces }

    /// The postmasters this process can see in `proc` (another user's processes are visible only to root; the
    /// caller keeps its own `postmaster.pid` check for those).
    public static func scan(proc: String = "/proc") -> [RunningCluster] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: proc)) ?? []
        return entries.compactMap { entry in
            guard let pid = Int32(entry), pid > 0 else { return nil }
            return postmaster(pid: pid, proc: proc)
        }
    }

    /// The cluster whose postmaster is `pid`, or nil when `pid` is no postmaster (its working directory has no
    /// `postmaster.pid` naming it).
    static func postmaster(pid: Int32, proc: String) -> RunningCluster? {
        guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(proc)/\(pid)/cwd"),
            let text = try? String(contentsOfFile: cwd + "/postmaster.pid", encoding: .utf8),
            Int32(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") == pid
        else { return nil }
        let data = realPath(cwd)
        let links = (try? FileManager.default.contentsOfDirectory(atPath: data + "/pg_tblspc")) ?? []
        let tablespaces = links.sorted().compactMap { link -> String? in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: data + "/pg_tblspc/" + link)
            else { return nil }
            return realPath(target.hasPrefix("/") ? target : data + "/pg_tblspc/" + target)
        }
        return RunningCluster(pid: pid, dataDirectory: data, tablespaces: tablespaces)
    }

    /// The directory of this cluster that `dir` is, lies inside, or contains; nil when they do not overlap.
    public func overlap(with dir: String) -> String? {
        let d = RunningCluster.realPath(dir)
        return directories.first { RunningCluster.overlaps(d, $0) }
    }

    /// True when `a` and `b` (real paths) are the same directory or one lies inside the other.
    static func overlaps(_ a: String, _ b: String) -> Bool {
        let (x, y) = (a == "/" ? "" : a, b == "/" ? "" : b)
        return x == y || x.hasPrefix(y + "/") || y.hasPrefix(x + "/")
    }

    /// `path` with symbolic links resolved. A path that does not exist yet is resolved from its nearest existing
    /// ancestor, so that a directory still to be created inside a live one is recognised too.
    static func realPath(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        let parent = (path as NSString).deletingLastPathComponent
        guard !parent.isEmpty, parent != path else { return path }
        let base = realPath(parent)
        return (base == "/" ? "" : base) + "/" + (path as NSString).lastPathComponent
    }
}
