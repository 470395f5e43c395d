import CairnPostgres
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway PostgreSQL cluster (15 unless told another ``PGMajor``) owned by the `postgres` OS user, for one
/// test. It archives with `cairn wal-push` into the repository of `config` when one is given.
public final class ScratchCluster: @unchecked Sendable {
    public let dir: String
    public let data: String
    public let socketDir: String
    public let port: Int
    /// The cluster's major and the folder of its programs (initdb, pg_ctl, psql, pgbench).
    public let major: PGMajor
    public let bin: String
    /// The cairn configuration this cluster archives with.
    public private(set) var config: String?

    /// Creates, configures and starts a new cluster. `repository` writes the cairn configuration for the
    /// cluster (given its directory and connection string) and returns its path; the cluster then archives into it.
    /// `checksums` turns data checksums on or off at initdb (nil: the major's default, off on 15, on on 18).
    public init(
        name: String, major: PGMajor = .v15, checksums: Bool? = nil, settings: [String] = [],
        repository: ((_ dir: String, _ conninfo: String) throws -> String)? = nil
    ) throws {
        self.major = major
        bin = major.bin
        dir = try ScratchCluster.makeDirectory(name)
        data = dir + "/data"
        socketDir = dir + "/sock"
        port = ScratchCluster.freePort()
        try Run.shell("mkdir -p \(socketDir) && chown postgres:postgres \(dir) \(socketDir)")
        let config = try repository?(dir, "host=\(socketDir) port=\(port) user=postgres dbname=postgres")
        self.config = config
        let sums =
            checksums.map { $0 ? " --data-checksums" : (major.checksumsByDefault ? " --no-data-checksums" : "") } ?? ""
        try asPostgres(
            "\(bin)/initdb -D \(data) -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8\(sums) >/dev/null")
        var conf = [
            "listen_addresses = ''", "port = \(port)", "unix_socket_directories = '\(socketDir)'",
            "wal_level = replica", "max_wal_senders = 5", "shared_buffers = 32MB", "fsync = on",
            "archive_mode = on",
            "archive_command = '\(config.map { "\(Run.installedCairn) --config \($0) wal-push %p" } ?? "/bin/true")'"
        ]
        conf += major.settings + settings
        try (conf.joined(separator: "\n") + "\n").appendLines(to: data + "/postgresql.conf")
        try start()
    }

    /// Wraps an existing data directory (a restore), giving it its own port and socket; its programs are those of
    /// the major in its PG_VERSION.
    public init(restoredAt data: String, dir: String, config: String? = nil) throws {
        major = PGMajor.of(dataDirectory: data)
        bin = major.bin
        self.dir = dir
        self.config = config
        self.data = data
        socketDir = dir + "/sock-\(UInt16.random(in: 1000...9999))"
        port = ScratchCluster.freePort()
        try Run.shell("mkdir -p \(socketDir) && chown postgres:postgres \(socketDir)")
        try "port = \(port)\nunix_socket_directories = '\(socketDir)'\nlisten_addresses = ''\n"
            .appendLines(to: data + "/postgresql.auto.conf")
    }

    public var conninfo: String { "host=\(socketDir) port=\(port) user=postgres dbname=postgres" }

    public func start() throws {
        try asPostgres("\(bin)/pg_ctl -D \(data) -l \(data).log -w -t 120 start >/dev/null")
    }

    public func stop(mode: String = "fast") {
        _ = try? asPostgres("\(bin)/pg_ctl -D \(data) -m \(mode) -w stop >/dev/null 2>&1", check: false)
    }

    /// Waits until recovery finished and the server accepts writes (a promoted restore).
    public func waitUntilPromoted(timeout: Double = 180) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? psql("SELECT pg_is_in_recovery()")) == "f" { return }
            usleep(200_000)
        }
        throw TestFailure("server on \(data) did not finish recovery within \(timeout)s; log:\n\(log.suffix(3000))")
    }

    /// The server log.
    public var log: String { (try? String(contentsOfFile: data + ".log", encoding: .utf8)) ?? "" }

    /// Runs SQL and returns unaligned, tuples-only output.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let r = try Run.program(
            bin + "/psql",
            [
                "-h", socketDir, "-p", String(port), "-U", "postgres", "-d", database,
                "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql
            ])
        guard r.status == 0 else { throw TestFailure("psql failed on \(data): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Forces a segment switch and waits until the archiver has archived it.
    ///
    /// When nothing was written since the last switch (right after a backup's own switch, seen on 18), the switch is
    /// a no-op and returns the current segment's first record position (offset ≤ 40, its long page header): then
    /// everything written so far is in the segment before, which is the one to wait for.
    public func switchAndWaitForArchive(timeout: Double = 120) throws {
        let seg = try psql(
            """
            SELECT pg_walfile_name(CASE WHEN pg_wal_lsn_diff(l, '0/0') % (SELECT setting::numeric FROM pg_settings WHERE name = 'wal_segment_size') <= 40
                                        THEN l - 41 ELSE l END)
            FROM (SELECT pg_switch_wal() AS l) s
            """)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let last = try psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            // last_archived_wal may be a backup history file (…02.00000028.backup): compare segment names.
            if last.count >= 24 && String(last.prefix(24)) >= seg { return }
            usleep(100_000)
        }
        throw TestFailure(
            "segment \(seg) was not archived within \(timeout)s: \(try psql("SELECT * FROM pg_stat_archiver"))\n\(log.suffix(2000))"
        )
    }

    /// The server's time now, in UTC with microseconds (`2026-12-03T06:30:44.123456Z`): a `--target-time`.
    public func serverTime() throws -> String {
        try psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    }

    /// A time target between what was committed before and what is committed after: the server's time, with
    /// `gap` seconds of nothing on either side.
    public func timeTargetBetweenCommits(gap: Double = 1.2) throws -> String {
        usleep(UInt32(gap * 1_000_000))
        let t = try serverTime()
        usleep(UInt32(gap * 1_000_000))
        return t
    }

    /// Runs `cairn --config <this cluster's config> ARGS` as the postgres user.
    @discardableResult
    public func cairn(_ args: [String]) throws -> ProcessResult {
        guard let config else { throw TestFailure("cluster has no cairn configuration") }
        return try Run.cairnAsPostgres(["--config", config] + args)
    }

    /// Removes the cluster's files (after stopping it).
    /// Restores this cluster's repository with `args` (archiving off) into a new folder, starts the result and
    /// waits until it is promoted.
    public func restoreAndStart(_ args: [String] = []) throws -> ScratchCluster {
        let dir = dir + "/restore-\(UInt32.random(in: 0...UInt32.max))"
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let r = try cairn(["restore", "--target-dir", dir + "/data", "--archive-mode", "off"] + args)
        guard r.status == 0 else { throw TestFailure("restore \(args) failed (\(r.status)): \(r.stderr)") }
        let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: config)
        try restored.start()
        try restored.waitUntilPromoted()
        return restored
    }

    public func destroy() {
        stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    func asPostgres(_ command: String, check: Bool = true) throws -> ProcessResult {
        try Run.shell("runuser -u postgres -- bash -c \(ShellQuoting.quote(command))", check: check)
    }

    static func makeDirectory(_ name: String) throws -> String {
        let d = try TestEnvironment.tempDirectory(name)
        try Run.shell("chmod 755 \((d as NSString).deletingLastPathComponent) \(d) && chown postgres:postgres \(d)")
        return d
    }

    /// A TCP port nothing listens on now.
    public static func freePort() -> Int { LocalPort.free() }
}

/// Shell quoting for test commands.
public enum ShellQuoting {
    public static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

extension String {
    func appendLines(to path: String) throws {
        guard let h = FileHandle(forWritingAtPath: path) else { throw TestFailure("cannot open \(path)") }
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(contentsOf: Data(self.utf8))
    }
}
