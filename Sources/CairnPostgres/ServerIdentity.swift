import CairnBase
import Foundation

/// The fields Cairn reads from a data directory's `postmaster.pid` (the lock file the running postmaster keeps
/// there; see PostgreSQL's `miscadmin.h`, `LOCK_FILE_LINE_*`).
public struct PostmasterPid: Sendable, Equatable {
    /// Line 1: the postmaster's process id (on the host that runs it).
    public var pid: Int32
    /// Line 2: the data directory the postmaster was started with.
    public var dataDirectory: String
    /// Line 3: the postmaster's start time, seconds since the epoch.
    public var startTime: Int64
    /// Line 4: the port it listens on.
    public var port: Int

    public init(pid: Int32, dataDirectory: String, startTime: Int64, port: Int) {
        self.pid = pid
        self.dataDirectory = dataDirectory
        self.startTime = startTime
        self.port = port
    }

    /// Parses the text of a `postmaster.pid`; nil when lines 1 to 4 are missing or not numbers where numbers belong
    /// (an empty file, one a starting postmaster has not finished writing, or something else entirely).
    public static func parse(_ text: String) -> PostmasterPid? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard lines.count >= 4, let pid = Int32(lines[0]), pid > 0, !lines[1].isEmpty,
            let start = Int64(lines[2]), let port = Int(lines[3]), (1...65535).contains(port)
        else { return nil }
        return PostmasterPid(pid: pid, dataDirectory: lines[1], startTime: start, port: port)
    }
}

/// Proves that a data directory on this host holds the files of the server a connection reaches, not those of
/// another server with the same system identifier (a standby or a restored copy reached through a VIP or
/// `target_session_attrs=read-write`): the directory's `postmaster.pid` must name the server's port and start time.
public enum LocalServerProof {
    /// Why the proof failed, in words for an error message.
    public struct Mismatch: Error, Sendable, Equatable {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
    }

    /// How many seconds `pg_postmaster_start_time()` may lie after the lock file's start time: the postmaster writes
    /// `postmaster.pid` with the time it started, and records the start time SQL reports a little later (after
    /// creating shared memory).
    public static let startTimeSlack: Int64 = 10

    /// Whether the running server reached by `conn` is the one whose lock file is `<dataDirectory>/postmaster.pid`
    /// on this host. Queries the server's port and postmaster start time.
    /// - Throws: errors from the queries only; an absent, unreadable or different lock file is a ``Mismatch``.
    public static func matches(conn: PGConnection, dataDirectory: String) throws -> Result<Void, Mismatch> {
        let row = try conn.query(
            "SELECT floor(extract(epoch FROM pg_postmaster_start_time()))::bigint::text, current_setting('port')")
        guard let r = row.first, r.count == 2, let start = Int64(r[0] ?? ""), let port = Int(r[1] ?? "") else {
            throw CairnError(.pgQuery, "the server did not report its start time and port")
        }
        return matches(serverStartTime: start, serverPort: port, dataDirectory: dataDirectory)
    }

    /// The comparison itself, for a server that started at `serverStartTime` (epoch seconds) on `serverPort`.
    public static func matches(serverStartTime: Int64, serverPort: Int, dataDirectory: String) -> Result<Void, Mismatch>
    {
        let path = dataDirectory + "/postmaster.pid"
        let text: String
        switch readLockFile(path) {
        case .success(let t): text = t
        case .failure(let m): return .failure(m)
        }
        guard let lock = PostmasterPid.parse(text) else {
            return .failure(Mismatch("\(path) on this host is not a complete postmaster.pid"))
        }
        return compare(lock, path: path, serverStartTime: serverStartTime, serverPort: serverPort)
    }

    /// Compares a parsed lock file with the server's port and start time.
    static func compare(
        _ lock: PostmasterPid, path: String, serverStartTime: Int64, serverPort: Int
    ) -> Result<Void, Mismatch> {
        guard lock.port == serverPort else {
            return .failure(
                Mismatch(
                    "\(path) on this host belongs to a postmaster on port \(lock.port) (pid \(lock.pid)), "
                        + "but the server cairn connects to listens on port \(serverPort)"))
        }
        let lag = serverStartTime - lock.startTime
        guard lag >= 0 && lag <= startTimeSlack else {
            return .failure(
                Mismatch(
                    "\(path) on this host belongs to a postmaster started at \(formatEpoch(lock.startTime)) (pid \(lock.pid)), "
                        + "but the server cairn connects to started at \(formatEpoch(serverStartTime))"))
        }
        return .success(())
    }

    static func readLockFile(_ path: String) -> Result<String, Mismatch> {
        guard let data = FileManager.default.contents(atPath: path) else {
            let why =
                access(path, F_OK) == 0
                ? "is not readable by this user" : "does not exist (no server runs there on this host)"
            return .failure(Mismatch("\(path) \(why)"))
        }
        return .success(String(decoding: data, as: UTF8.self))
    }

    static func formatEpoch(_ t: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(t)))
    }
}
