import CairnStorage
import Foundation
import TestSupport
import Testing

/// Several repositories (issue 23) on a real PostgreSQL with real S3 servers: backups committed in each, WAL
/// acknowledged once every repository holds it, and a point-in-time restore that stays exact when either
/// repository is lost entirely.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct SeveralRepositoriesTests {
    /// The repositories of a configuration written by ``TestRepository/config(_:dir:conninfo:major:limits:extra:masterKey:)``,
    /// for direct access: local folders and S3 prefixes, in order.
    static func members(config: String, kinds: [RepoKind], dir: String) throws -> [any Repository] {
        let text = try String(contentsOfFile: config, encoding: .utf8)
        var prefixes = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("prefix:") }.map { String($0.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
        return kinds.enumerated().map { i, kind in
            guard let server = kind.server else { return LocalRepository(root: "\(dir)/repo-\(kind)-\(i + 1)") }
            return S3Repository(settings: TestEnvironment.s3Settings(prefix: prefixes.removeFirst(), server: server))
        }
    }

    /// Deletes every object of a repository: the repository is gone.
    static func wipe(_ repo: any Repository) throws {
        let keys = try repo.list(prefix: "").map(\.key)
        try repo.delete(keys)
        #expect(try repo.list(prefix: "").isEmpty)
    }

    /// Local folder + S3 on the first tested major, S3 + S3 (moto and SeaweedFS) on the last; each losing the
    /// first and the second repository.
    @Test(arguments: [
        ([RepoKind.local, .s3], 0), ([RepoKind.local, .s3], 1), ([.s3, .seaweed], 0), ([.s3, .seaweed], 1)
    ])
    func aWeekOfBackupsAndArchivingSurvivesLosingARepository(kinds: [RepoKind], lost: Int) throws {
        let kinds = kinds.filter { $0.server.map(S3Server.tested.contains) ?? true }
        guard kinds.count == 2, let major = kinds.contains(.local) ? PGMajor.tested.first : PGMajor.tested.last else {
            return
        }
        let c = try ScratchCluster(name: "several-\(kinds[0])-\(kinds[1])-\(lost)", major: major) {
            try TestRepository.config(kinds, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        for (i, k) in kinds.enumerated() { #expect(try c.cairn(["--repo", "\(k)-\(i + 1)", "init"]).status == 0) }
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL)")

        // A week: each day's rows, then that day's backup (a full on the first day, incrementals after).
        for day in 1...7 {
            try c.psql("INSERT INTO t (v) SELECT 'day-\(day)-' || g FROM generate_series(1, 2000) g")
            let b = try c.cairn(["backup", "--type", day == 1 ? "full" : "incr"])
            #expect(b.status == 0, "day \(day): \(b.stderr)")
            #expect(b.stdout.contains("copied to repository \(kinds[1])-2"), "day \(day): \(b.stdout)")
            try c.switchAndWaitForArchive()
        }
        try c.psql("INSERT INTO t (v) SELECT 'last-' || g FROM generate_series(1, 500) g")
        let expected = try PointInTimeRestoreTests.tableDigest(c)
        let target = try c.timeTargetBetweenCommits()
        try c.psql("INSERT INTO t (v) SELECT 'after-target-' || g FROM generate_series(1, 500) g")
        try c.switchAndWaitForArchive()

        // Both repositories hold the same committed backups and WAL.
        let repos = try Self.members(config: c.config!, kinds: kinds, dir: c.dir)
        let wal = try repos.map { Set(try $0.list(prefix: "wal/").map(\.key)) }
        #expect(wal[0] == wal[1] && !wal[0].isEmpty)
        let manifests = try repos.map {
            Set(try $0.list(prefix: "backups/").map(\.key).filter { $0.hasSuffix("/manifest.json") })
        }
        #expect(manifests[0] == manifests[1] && manifests[0].count == 7)

        // One repository is lost entirely: the restore comes from the other, exact.
        try Self.wipe(repos[lost])
        let restored = try c.restoreAndStart(["--target-time", target])
        defer { restored.destroy() }
        #expect(try PointInTimeRestoreTests.tableDigest(restored) == expected)
        #expect(try restored.psql("SELECT count(*) FROM t WHERE v LIKE 'after-target-%'") == "0")
        #expect(try restored.psql("SELECT count(*) FROM t WHERE v LIKE 'last-%'") == "500")

        // `cairn copy` fills the lost repository again from the other, and a restore from it alone is exact.
        let copy = try c.cairn([
            "copy", "--from", "\(kinds[1 - lost])-\(2 - lost)", "--to", "\(kinds[lost])-\(lost + 1)"
        ])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(copy.stdout.contains("initialised"), "\(copy.stdout)")
        #expect(Set(try repos[lost].list(prefix: "wal/").map(\.key)).isSuperset(of: wal[1 - lost]))
        let again = try c.cairn([
            "copy", "--from", "\(kinds[1 - lost])-\(2 - lost)", "--to", "\(kinds[lost])-\(lost + 1)", "--dry-run"
        ])
        #expect(again.stdout.contains("would copy 0 backup(s)"), "\(again.stdout)")
        restored.destroy()
        try Self.wipe(repos[1 - lost])
        let fromCopy = try c.restoreAndStart(["--target-time", target])
        defer { fromCopy.destroy() }
        #expect(try PointInTimeRestoreTests.tableDigest(fromCopy) == expected)
    }

    /// A repository that fails holds archiving back only up to `archive.max_backlog`: PostgreSQL keeps the WAL and
    /// retries; past the backlog, segments stored in the other repository are acknowledged, and `cairn copy`
    /// catches the failed one up.
    @Test func archivingWaitsForAFailedRepositoryUpToTheBacklogThenGoesOn() throws {
        let c = try ScratchCluster(name: "several-backlog") {
            try TestRepository.config([.s3, .local], dir: $0, conninfo: $1, extra: "archive:\n  max_backlog: 16MiB")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["--repo", "s3-1", "init"]).status == 0)
        #expect(try c.cairn(["--repo", "local-2", "init"]).status == 0)
        try c.psql("CREATE TABLE t (id int)")
        try c.switchAndWaitForArchive()
        let local = c.dir + "/repo-local-2"
        // The local repository fails: its folder can no longer be written or read.
        try Run.shell("chmod 000 \(local)")
        // One segment waits (16 MiB, not more than the backlog allows): PostgreSQL keeps it and retries.
        try c.psql("INSERT INTO t VALUES (1)")
        _ = try c.psql("SELECT pg_switch_wal()")
        usleep(4_000_000)
        let stuck = try c.psql("SELECT failed_count > 0 AND coalesce(last_failed_wal, '') <> '' FROM pg_stat_archiver")
        #expect(stuck == "t", "archiving must wait while the backlog is below archive.max_backlog")
        let ready = try Run.shell("ls \(c.data)/pg_wal/archive_status | grep -c ready", check: false).stdout
        #expect((Int(ready.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 1)
        // More WAL than the backlog allows: archiving goes on without the failed repository, down to the backlog.
        let firstStuck = try c.psql("SELECT last_failed_wal FROM pg_stat_archiver")
        try c.psql("INSERT INTO t SELECT generate_series(1, 1500000)")
        _ = try c.psql("SELECT pg_switch_wal()")
        let deadline = Date().addingTimeInterval(150)
        var archived = ""
        while Date() < deadline {
            archived = try c.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            if archived > firstStuck { break }
            usleep(500_000)
        }
        #expect(archived > firstStuck, "past the backlog, segments are acknowledged without the failed repository")
        // The repository is back: what waits goes to both, and `cairn copy` fills in what it missed.
        try Run.shell("chmod 700 \(local)")
        try c.switchAndWaitForArchive(timeout: 180)
        let repos = try Self.members(config: c.config!, kinds: [.s3, .local], dir: c.dir)
        let lag = try repos.map { Set(try $0.list(prefix: "wal/").map(\.key)) }
        #expect(lag[1].isStrictSubset(of: lag[0]), "the failed repository lacks what was acknowledged without it")
        let lagging = try c.cairn(["metrics"]).stdout
        #expect(lagging.contains("cairn_repository_up{repository=\"local-2\"} 1"), "\(lagging)")
        #expect(!lagging.contains("cairn_repository_missing_wal_files{repository=\"local-2\"} 0"), "\(lagging)")
        let copy = try c.cairn(["copy", "--to", "local-2"])
        #expect(copy.status == 0, "\(copy.stderr)")
        let caughtUp = try c.cairn(["metrics"]).stdout
        #expect(caughtUp.contains("cairn_repository_missing_wal_files{repository=\"local-2\"} 0"), "\(caughtUp)")
        #expect(Set(try repos[1].list(prefix: "wal/").map(\.key)) == Set(try repos[0].list(prefix: "wal/").map(\.key)))
    }

    /// Flips a byte in the middle of a local repository's object (same size, same name).
    static func damage(_ path: String) throws {
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        try Run.shell("printf '\\x5a\\xa5' | dd of=\(path) bs=1 seek=\(size / 2) conv=notrunc status=none")
    }

    /// A damaged backup object and a damaged WAL segment in the primary: the restore says so and completes from
    /// the other repository, exact; a drill of the damaged repository fails, a drill of the other passes.
    @Test func aDamagedObjectIsReadFromTheOtherRepositoryAndTheDrillOfTheDamagedOneFails() throws {
        let c = try ScratchCluster(name: "several-damaged") {
            try TestRepository.config([.local, .s3], dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["--repo", "local-1", "init"]).status == 0)
        #expect(try c.cairn(["--repo", "s3-2", "init"]).status == 0)
        try c.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v text NOT NULL)")
        try c.psql("INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, 50000) g")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO t (v) SELECT 'after-' || g FROM generate_series(1, 5000) g")
        let expected = try PointInTimeRestoreTests.tableDigest(c)
        let target = try c.timeTargetBetweenCommits()
        try c.psql("INSERT INTO t (v) VALUES ('after-target')")
        try c.switchAndWaitForArchive()

        let root = c.dir + "/repo-local-1"
        let bundles = try Run.shell("find \(root)/backups -name '*.tar.zst' | sort").stdout.split(separator: "\n")
        let segments = try Run.shell("find \(root)/wal -name '0*' -size +100k | sort").stdout.split(separator: "\n")
        #expect(!bundles.isEmpty && segments.count >= 2)
        for b in bundles { try Self.damage(String(b)) }
        try Self.damage(String(segments[segments.count - 1]))

        let dir = c.dir + "/restored"
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let r = try c.cairn(["restore", "--target-dir", dir + "/data", "--archive-mode", "off", "--target-time", target]
        )
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("restoring from repository local-1 failed"), "\(r.stderr)")
        let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
        defer { restored.destroy() }
        try restored.start()
        try restored.waitUntilPromoted()
        #expect(try PointInTimeRestoreTests.tableDigest(restored) == expected)
        #expect(restored.log.contains("could not serve") || restored.log.contains("trying the next repository"))

        let bad = try c.cairn(["drill"])
        #expect(bad.status == 65, "a drill of the damaged repository fails: \(bad.stdout) \(bad.stderr)")
        let good = try c.cairn(["--repo", "s3-2", "drill"])
        #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
    }
}
