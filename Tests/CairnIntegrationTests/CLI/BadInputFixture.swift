import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

/// One PostgreSQL 15 cluster with a local repository holding a committed full backup, archived WAL and a restore
/// point with an odd name, shared by every bad-input case (set up once per suite, always torn down).
final class BadInputFixture: @unchecked Sendable {
    @TaskLocal static var current: BadInputFixture?

    /// Sets the fixture up around a suite and removes it afterwards, whatever happened.
    struct Scope: SuiteTrait, TestScoping {
        func provideScope(
            for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
        ) async throws {
            guard TestEnvironment.integrationEnabled else { return try await function() }
            let f = try BadInputFixture()
            defer { f.destroy() }
            try await BadInputFixture.$current.withValue(f) { try await function() }
        }
    }

    static var shared: BadInputFixture {
        get throws {
            guard let f = current else {
                throw TestFailure("no bad-input fixture (the suite needs BadInputFixture.Scope())")
            }
            return f
        }
    }

    let cluster: ScratchCluster
    let backupId: String
    /// `count:md5` of table `t`, to prove the cluster's data is untouched.
    let digest: String
    /// A restore point whose name has quotes, a backslash, spaces and non-ASCII letters.
    static let oddRestorePoint = #"it's a "test" \ ünïcödé ✓"#
    private let verifyLock = NSLock()

    var config: String { cluster.config! }
    var repo: String { cluster.dir + "/repo" }
    var systemIdentifier: String { (try? cluster.psql("SELECT system_identifier FROM pg_control_system()")) ?? "" }

    init() throws {
        cluster = try ScratchCluster(name: "badinput") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        do {
            guard try cluster.cairn(["init"]).status == 0 else { throw TestFailure("init failed") }
            try cluster.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g")
            // A role that must give a password (scram) on the socket, for the wrong-password case.
            try cluster.psql(
                "SET password_encryption = 'scram-sha-256'; CREATE ROLE pwuser LOGIN PASSWORD 'right-password'")
            try Run.shell("sed -i '1i local all pwuser scram-sha-256' \(cluster.data)/pg_hba.conf")
            try cluster.psql("SELECT pg_reload_conf()")
            let b = try cluster.cairn(["backup", "--json"])
            guard b.status == 0, let m = b.stdout.range(of: #""id" : "[0-9T]+F""#, options: .regularExpression) else {
                throw TestFailure("backup failed: \(b.stderr)")
            }
            backupId = String(b.stdout[m].dropFirst(8).dropLast())
            try cluster.psql("INSERT INTO t VALUES (2001, 'after-backup')")
            let quoted = BadInputFixture.oddRestorePoint.replacingOccurrences(of: "'", with: "''")
            try cluster.psql(
                "SELECT pg_create_restore_point(E'\(quoted.replacingOccurrences(of: "\\", with: "\\\\"))')")
            try cluster.psql("INSERT INTO t VALUES (2002, 'after-restore-point')")
            try cluster.switchAndWaitForArchive()
            digest = try cluster.psql("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM t")
        } catch {
            cluster.destroy()
            throw error
        }
    }

    func destroy() { cluster.destroy() }

    /// Runs cairn as the postgres OS user with a configuration (the fixture's by default).
    func cairn(_ args: [String], config: String? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try Run.cairnAsPostgres(["--config", config ?? self.config] + args, environment: environment)
    }

    /// A new folder the postgres user owns.
    func folder(_ name: String) throws -> String {
        let d = try TestEnvironment.tempDirectory("bad-\(name)")
        try Run.shell("chmod 755 \(d) && chown postgres:postgres \(d)")
        return d
    }

    /// The fixture's configuration text with `replacements` applied and `extra` appended, written to a new folder.
    func config(_ name: String, replacing replacements: [(String, String)] = [], extra: String = "") throws -> String {
        var text = try String(contentsOfFile: config, encoding: .utf8)
        for (a, b) in replacements { text = text.replacingOccurrences(of: a, with: b) }
        return try write(name, text + "\n" + extra)
    }

    /// Writes a file into a new folder readable by the postgres user; returns its path.
    func write(_ name: String, _ text: String, file: String = "cairn.yaml") throws -> String {
        let path = try folder(name) + "/" + file
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres:postgres \(path) && chmod 644 \(path)")
        return path
    }

    /// A copy of the repository (in a new folder, or at `at`; without the locks of jobs running now), and a
    /// configuration that uses it, with `replacements` and `extra` as in ``config(_:replacing:extra:)``.
    func copyRepository(
        _ name: String, at path: String? = nil, replacing replacements: [(String, String)] = [],
        extra: String = ""
    ) throws -> (config: String, repo: String) {
        let dest = try path ?? (folder(name) + "/repo")
        // Other cases write to the repository meanwhile: a temporary file may vanish while cp runs (objects are
        // renamed into place whole, so what is copied is consistent).
        try Run.shell(
            "cp -a \(repo) \(dest) 2>/dev/null; test -f \(dest)/cairn.json && rm -rf \(dest)/locks && chown -R postgres:postgres \(dest)"
        )
        return (try config(name, replacing: [("path: \(repo)", "path: \(dest)")] + replacements, extra: extra), dest)
    }

    /// The first key under a prefix of a local repository (sorted), e.g. a bundle or a WAL segment.
    func firstObject(in repo: String, under prefix: String) throws -> String {
        let r = try Run.shell("cd \(repo) && find \(prefix) -type f | sort | head -1")
        let key = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { throw TestFailure("no object under \(prefix) in \(repo)") }
        return key
    }

    /// Every backup and WAL file of a local repository with its size and digest: what must not change.
    static func snapshot(_ repo: String) throws -> String {
        try Run.shell(
            "cd \(repo) && find backups wal cairn.json cairn.json.copy -type f 2>/dev/null | sort | xargs -r sha256sum"
        ).stdout
    }

    /// The fixture's repository still verifies in full and the cluster still runs with its data.
    func expectIntact(_ what: String) throws {
        verifyLock.lock()
        defer { verifyLock.unlock() }
        let v = try cairn(["verify", "--full"])
        #expect(v.status == 0, "\(what): the repository no longer verifies: \(v.stdout)\(v.stderr)")
        #expect(
            try cluster.psql("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM t") == digest,
            "\(what): the cluster's data changed")
    }
}

/// Flips one bit of a file, or cuts it short, in place.
enum Damage {
    static func flipBit(_ path: String, bit: Int) throws {
        var d = try Data(contentsOf: URL(fileURLWithPath: path))
        d[bit / 8] ^= UInt8(1 << (bit % 8))
        try d.write(to: URL(fileURLWithPath: path))
    }

    static func truncate(_ path: String, to length: Int) throws {
        guard Glibc.truncate(path, off_t(length)) == 0 else { throw TestFailure("cannot truncate \(path)") }
    }

    static func size(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
    }
}

/// A small file system (tmpfs) mounted for one case, unmounted on every path.
final class SmallDisk {
    let path: String

    init(_ name: String, bytes: Int) throws {
        path = try TestEnvironment.tempDirectory("disk-\(name)") + "/mnt"
        try Run.shell(
            "mkdir -p \(path) && mount -t tmpfs -o size=\(bytes),mode=0755 tmpfs \(path) && chown postgres:postgres \(path)"
        )
    }

    func unmount() { _ = try? Run.shell("umount -l \(path)", check: false) }
    deinit { unmount() }
}
