import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

// MARK: - the table: the repository's identity and integrity

extension BadInput {
    /// A repository initialised for `cluster` (another system identifier or major version) at a new folder.
    static func alienRepository(_ f: BadInputFixture, _ name: String, cluster: ClusterInfo) throws -> String {
        let dir = try f.folder(name)
        _ = try InitOperation.run(repo: LocalRepository(root: dir + "/repo"), cluster: cluster, clock: SystemClock())
        try Run.shell("chown -R postgres:postgres \(dir)/repo")
        return try f.config(name, replacing: [("path: \(f.repo)", "path: \(dir)/repo")])
    }

    /// Damages the first object under `prefix` of a copy of the repository, runs `args` on the copy, and checks
    /// that nothing else in the copy changed.
    static func damaged(
        _ f: BadInputFixture, _ name: String, under prefix: String, truncate: Bool = false,
        _ args: (_ key: String, _ dir: String) -> [String]
    ) throws -> ProcessResult {
        let (config, repo) = try f.copyRepository(name)
        let key = try f.firstObject(in: repo, under: prefix)
        let size = try Damage.size(repo + "/" + key)
        if truncate {
            try Damage.truncate(repo + "/" + key, to: size / 2)
        } else {
            try Damage.flipBit(repo + "/" + key, bit: size * 4 + 3)
        }
        let before = try BadInputFixture.snapshot(repo)
        let dir = (repo as NSString).deletingLastPathComponent
        let r = try f.cairn(args(key, dir), config: config)
        #expect(try BadInputFixture.snapshot(repo) == before, "\(name): the repository changed")
        #expect(
            r.stderr.contains(key) || r.stdout.contains(key), "\(name): \(key) is not named\n\(r.stdout)\(r.stderr)")
        return r
    }

    static let repository: [BadInput] = [
        .init(
            "repository of another cluster", .repoForeign, says: ["belongs to cluster 7000000000000000042"],
            touchesData: true
        ) { f in
            let c = try alienRepository(
                f, "foreign",
                cluster: ClusterInfo(
                    systemIdentifier: "7000000000000000042", versionNum: 150010,
                    walSegmentSize: 16 << 20, dataDirectory: nil))
            return try f.cairn(["backup"], config: c)
        },
        .init("repository of PostgreSQL 14", .pgVersion, says: ["PostgreSQL 14"], touchesData: true) { f in
            let c = try alienRepository(
                f, "pg14",
                cluster: ClusterInfo(
                    systemIdentifier: f.systemIdentifier, versionNum: 140010,
                    walSegmentSize: 16 << 20, dataDirectory: nil))
            return try f.cairn(["backup"], config: c)
        },
        .init("uninitialised repository", .repoUninitialized, says: ["cairn init"]) { f in
            try f.cairn(
                ["backup"],
                config: f.config("uninit", replacing: [("path: \(f.repo)", "path: \(try f.folder("uninit"))/repo")]))
        },
        .init("corrupt cairn.json, both copies", .repoCorrupt, says: ["cairn.json"]) { f in
            let (config, repo) = try f.copyRepository("json2")
            try Damage.flipBit(repo + "/cairn.json", bit: 300)
            try Damage.truncate(repo + "/cairn.json.copy", to: 20)
            return try f.cairn(["list"], config: config)
        },
        .init("corrupt cairn.json, one copy (works; verify names it, init repairs it)", nil) { f in
            let (config, repo) = try f.copyRepository("json1")
            try Damage.flipBit(repo + "/cairn.json", bit: 300)
            let r = try f.cairn(["restore", "--dry-run"], config: config)
            let v = try f.cairn(["verify"], config: config)
            #expect(
                v.status == ErrorCode.dataCorrupt.exitCode && v.stdout.contains("damaged-object cairn.json:"),
                "\(v.stdout)\(v.stderr)")
            let i = try f.cairn(["init"], config: config)
            #expect(
                i.status == 0 && i.stdout.contains("rewrote"), "init repairs the damaged twin: \(i.stdout)\(i.stderr)")
            let again = try f.cairn(["verify"], config: config)
            #expect(again.status == 0, "after init: \(again.stdout)\(again.stderr)")
            return r
        },
        .init("truncated bundle: restore", .dataCorrupt, says: ["truncated"]) { f in
            try damaged(f, "trunc-restore", under: "backups", truncate: true) { _, dir in
                ["restore", "--target-dir", dir + "/data"]
            }
        },
        .init("bit-flipped bundle: restore", .dataCorrupt, says: ["damaged"]) { f in
            try damaged(f, "flip-restore", under: "backups/\(f.backupId)/base") { _, dir in
                ["restore", "--target-dir", dir + "/data"]
            }
        },
        .init("bit-flipped bundle: verify", .dataCorrupt, says: ["damaged"]) { f in
            try damaged(f, "flip-verify", under: "backups/\(f.backupId)/base") { _, _ in ["verify", "--full"] }
        },
        .init("truncated WAL segment: verify", .dataCorrupt) { f in
            try damaged(f, "trunc-wal", under: "wal", truncate: true) { _, _ in ["verify"] }
        },
        .init(
            "bit-flipped WAL segment: wal-fetch", .dataCorrupt, exit: ErrorCode.walFetchFatalExitCode, says: ["damaged"]
        ) { f in
            try damaged(f, "flip-walfetch", under: "wal") { key, dir in
                ["wal-fetch", String((key as NSString).lastPathComponent.dropLast(4)), dir + "/segment"]
            }
        },
        .init("damaged manifest: restore that backup", .repoCorrupt, says: ["cairn verify"]) { f in
            try damaged(f, "flip-manifest", under: "backups/\(f.backupId)/manifest.json") { _, dir in
                ["restore", "--backup", f.backupId, "--target-dir", dir + "/data"]
            }
        }
    ]
}

// MARK: - the table: restore targets and names

extension BadInput {
    static let restore: [BadInput] = [
        .init(
            "target time in the future", .restoreTarget, says: ["is in the future", "recoverable window"],
            touchesData: true
        ) { f in
            try f.cairn(["restore", "--target-dir", f.cluster.dir + "/never", "--target-time", "2099-01-01 00:00:00+00"]
            )
        },
        .init("target time before the window", .restoreTarget, says: ["before the oldest reachable point"]) { f in
            try f.cairn(["restore", "--target-dir", f.cluster.dir + "/never", "--target-time", "2001-01-01 00:00:00+00"]
            )
        },
        .init("target time that is not a time", .usage, says: ["--target-time"]) { f in
            try f.cairn(["restore", "--target-dir", f.cluster.dir + "/never", "--target-time", "yesterday noon"])
        },
        .init("nonexistent backup id", .backupNotFound, says: ["20000101T000000F"]) { f in
            try f.cairn(["restore", "--target-dir", f.cluster.dir + "/never", "--backup", "20000101T000000F"])
        },
        .init("backup id with ../", .backupNotFound, says: ["../"]) { f in
            try f.cairn(["restore", "--target-dir", f.cluster.dir + "/never", "--backup", "../\(f.backupId)"])
        },
        .init("pin a backup id with ../ and quotes", .backupNotFound, says: ["cairn list"], touchesData: true) { f in
            try f.cairn(["pin", "../\"x\" y", "--reason", "keep"])
        },
        .init("unpin a backup id with spaces and unicode", .backupNotFound) { f in
            try f.cairn(["unpin", "my backup ✓"])
        },
        .init("restore into a non-empty directory", .restoreDirNotEmpty, says: ["--force"]) { f in
            let dir = try f.folder("busy")
            try Run.shell("mkdir \(dir)/data && echo keep > \(dir)/data/precious && chown -R postgres \(dir)/data")
            let r = try f.cairn(["restore", "--target-dir", dir + "/data"])
            #expect(
                (try? String(contentsOfFile: dir + "/data/precious", encoding: .utf8)) == "keep\n",
                "the directory was touched")
            return r
        },
        .init("relative target directory", .usage, says: ["absolute"]) { f in
            try f.cairn(["restore", "--target-dir", "data"])
        },
        .init("restore point name with a newline", .usage, says: ["--target-name"]) { f in
            try f.cairn(["restore", "--target-dir", f.cluster.dir + "/never", "--target-name", "two\nlines"])
        },
        .init("restore point name with quotes, backslash and unicode (restores)", nil, touchesData: true) { f in
            let dir = try f.folder("oddname")
            let r = try f.cairn([
                "restore", "--target-dir", dir + "/data", "--archive-mode", "off",
                "--target-name", BadInputFixture.oddRestorePoint
            ])
            guard r.status == 0 else { return r }
            let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: f.config)
            defer { restored.destroy() }
            try restored.start()
            try restored.waitUntilPromoted()
            // Replay stopped at the restore point: the row inserted after it is not there.
            #expect(try restored.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE id > 2000") == "2001")
            return r
        },
        .init("WAL file name with ../ (wal-push)", .walInvalidName, says: ["passwd is not a WAL"]) { f in
            try f.cairn(["wal-push", "../../etc/passwd"])
        },
        .init("WAL file name with ../ (wal-fetch)", .walInvalidName, exit: ErrorCode.walFetchFatalExitCode) { f in
            try f.cairn(["wal-fetch", "../cairn.json", f.cluster.dir + "/x"])
        }
    ]
}

// MARK: - the table: PostgreSQL

extension BadInput {
    static let postgres: [BadInput] = [
        .init("PostgreSQL unreachable", .pgUnreachable) { f in
            try f.cairn(
                ["backup"], config: f.copyRepository("nopg", replacing: [("port=\(f.cluster.port)", "port=9")]).config)
        },
        .init("wrong password", .pgAuth, says: ["pwuser"]) { f in
            let r = try f.cairn(
                ["backup"],
                config: f.copyRepository("pw", replacing: [("user=postgres", "user=pwuser password=wrong-password")])
                    .config)
            #expect(!r.stderr.contains("wrong-password"), "the password is printed")
            return r
        },
        .init("logical backup of a database that does not exist", .backupFailed, says: ["no such db"]) { f in
            try f.cairn(
                ["backup", "--type", "logical", "--database", "no such db"], config: f.copyRepository("nodb").config)
        },
        .init("database names with quotes, spaces, unicode and ../ (backup and restore)", nil, touchesData: true) { f in
            let source = #"odd "db" ✓/../x"#, target = "it's restored ü"
            try f.cluster.psql(#"CREATE DATABASE "odd ""db"" ✓/../x""#)
            try f.cluster.psql("CREATE TABLE odd AS SELECT 42 AS answer", database: source)
            let b = try f.cairn(["backup", "--type", "logical", "--database", source, "--json"])
            guard b.status == 0, let m = b.stdout.range(of: #""id" : "[0-9T]+L""#, options: .regularExpression) else {
                return b
            }
            let id = String(b.stdout[m].dropFirst(8).dropLast())
            let r = try f.cairn(["restore", "--backup", id, "--database", source, "--into", target])
            guard r.status == 0 else { return r }
            #expect(try f.cluster.psql("SELECT answer FROM odd", database: target) == "42")
            return r
        }
    ]
}
