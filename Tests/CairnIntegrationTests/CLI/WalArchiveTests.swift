import CairnBase
import CairnPostgres
import Foundation
import TestSupport
import Testing

/// `wal-push` and `wal-fetch` as PostgreSQL runs them, on the local folder and the S3 emulator.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct WalArchiveTests {
    @Test(arguments: PGMajor.matrix(RepoKind.withSeaweed, others: [.s3]))
    func pushIsIdempotentAndNeverOverwritesDifferentContent(repo: RepoKind, major: PGMajor) throws {
        let c = try ScratchCluster(name: "walpush-\(repo)-\(major)", major: major) {
            try TestRepository.config(repo, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        try c.switchAndWaitForArchive()
        let seg = try c.psql("SELECT last_archived_wal FROM pg_stat_archiver")
        let work = c.dir + "/work"
        try Run.shell("mkdir -p \(work) && chown postgres \(work)")

        // wal-fetch writes the segment back; pushing it again is a success that changes nothing.
        #expect(try c.cairn(["wal-fetch", seg, "\(work)/\(seg)"]).status == 0)
        let original = try #require(FileManager.default.contents(atPath: "\(work)/\(seg)"))
        #expect(original.count == 16 << 20)
        // The segment's page magic is the major's (wal-push checked it against the repository's major when archiving).
        #expect(
            original.prefix(2).withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
                == WALHeader.pageMagic[major.rawValue])
        let again = try c.cairn(["wal-push", "\(work)/\(seg)", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        // (S3 recognises the identical object at the driver level and reports it stored; both mean "it is there".)
        #expect(again.stdout.contains(repo == .local ? "\"outcome\" : \"already-stored\"" : "\"outcome\" : \"stored\""))

        // The same name with different content: refused, and the stored segment is untouched.
        var changed = original
        changed[8192 + 100] ^= 0xff
        try changed.write(to: URL(fileURLWithPath: "\(work)/\(seg)"))
        let conflict = try c.cairn(["wal-push", "\(work)/\(seg)"])
        #expect(conflict.status == ErrorCode.walConflict.exitCode)
        #expect(conflict.stderr.contains("[wal.conflict]"))
        #expect(conflict.stderr.contains("nothing was overwritten"))
        #expect(conflict.stderr.contains("HINT:"))
        try Run.shell("rm -f \(work)/check")
        #expect(try c.cairn(["wal-fetch", seg, "\(work)/check"]).status == 0)
        #expect(FileManager.default.contents(atPath: "\(work)/check") == original)

        // wal-fetch: a segment that is not there exits 1 (the end of the archive) and writes nothing.
        let missing = try c.cairn(["wal-fetch", "0000000100000000000000FE", "\(work)/missing"])
        #expect(missing.status == 1)
        #expect(!FileManager.default.fileExists(atPath: "\(work)/missing"))
        // A name that is not a WAL file is a real error: exit 126, so PostgreSQL stops instead of going on.
        #expect(try c.cairn(["wal-fetch", "RECOVERYXLOG", "\(work)/x"]).status == ErrorCode.walFetchFatalExitCode)
        #expect(try c.cairn(["wal-push", "\(work)/not-a-wal-file"]).status == ErrorCode.walInvalidName.exitCode)
    }

    @Test func refusesAnotherClustersSegment() throws {
        let a = try ScratchCluster(name: "walforeign-a") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { a.destroy() }
        #expect(try a.cairn(["init"]).status == 0)
        let b = try ScratchCluster(name: "walforeign-b", settings: ["archive_command = 'cp %p ../staging/%f'"])
        defer { b.destroy() }
        try Run.shell("mkdir -p \(b.dir)/staging && chown postgres \(b.dir)/staging")
        try b.psql("CREATE TABLE t AS SELECT 1")
        let seg = try b.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try b.psql("SELECT pg_switch_wal()")
        var path = ""
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: path) {
            path = "\(b.dir)/staging/\(seg)"
            usleep(100_000)
        }
        let r = try a.cairn(["wal-push", path])
        #expect(r.status == ErrorCode.repoForeign.exitCode, "\(r.stderr)")
        #expect(r.stderr.contains("belongs to cluster"))
    }

    /// `kill -9` of `wal-push` at random points: nothing half-written is ever visible, the next push succeeds,
    /// and every acknowledged segment is there and intact.
    @Test(arguments: RepoKind.standard)
    func killedPushesLeaveNothingHalfWritten(repo: RepoKind) throws {
        let c = try ScratchCluster(name: "walkill-\(repo)", settings: ["archive_command = 'cp %p ../staging/%f'"]) {
            try TestRepository.config(repo, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        try Run.shell("mkdir -p \(c.dir)/staging \(c.dir)/work && chown postgres \(c.dir)/staging \(c.dir)/work")
        #expect(try c.cairn(["init"]).status == 0)
        var segments: [String] = []
        for i in 0..<6 {
            try c.psql("CREATE TABLE t\(i) AS SELECT md5(g::text) v FROM generate_series(1, 20000) g")
            segments.append(try c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())"))
            try c.psql("SELECT pg_switch_wal()")
        }
        usleep(2_000_000)
        var acknowledged: [String] = []
        var killed = 0
        for (i, seg) in segments.enumerated() {
            let path = "\(c.dir)/staging/\(seg)"
            try #require(FileManager.default.fileExists(atPath: path))
            // Kill a first attempt after a random delay (0–60 ms: reading, compressing or uploading).
            let pid = try Run.spawnCairnAsPostgres(["--config", c.config!, "wal-push", path])
            usleep(UInt32.random(in: 0...60_000) + UInt32(i * 3000))
            kill(pid, SIGKILL)
            let st = Run.wait(pid)
            if st == 0 { acknowledged.append(seg) } else { killed += 1 }
            // Whatever the kill left, the object is absent or complete: fetch gives the exact file or exit 1.
            let out = "\(c.dir)/work/\(seg)"
            let f = try c.cairn(["wal-fetch", seg, out])
            #expect(f.status == 0 || f.status == 1, "fetch after kill: \(f.stderr)")
            if f.status == 0 {
                #expect(FileManager.default.contents(atPath: out) == FileManager.default.contents(atPath: path))
            }
            try? FileManager.default.removeItem(atPath: out)
            // The archiver's retry succeeds.
            let retry = try c.cairn(["wal-push", path])
            #expect(retry.status == 0, "\(retry.stderr)")
            acknowledged.append(seg)
        }
        for seg in Set(acknowledged) {
            let out = "\(c.dir)/work/final-\(seg)"
            #expect(try c.cairn(["wal-fetch", seg, out]).status == 0)
            #expect(
                FileManager.default.contents(atPath: out)
                    == FileManager.default.contents(atPath: "\(c.dir)/staging/\(seg)"))
        }
        #expect(killed + acknowledged.count >= segments.count)
    }

    @Test func damagedSegmentStopsRecoveryWithExit126() throws {
        let c = try ScratchCluster(name: "walfetch-damaged") {
            try TestRepository.config(.local, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        try c.switchAndWaitForArchive()
        let seg = try c.psql("SELECT last_archived_wal FROM pg_stat_archiver")
        let object = "\(c.dir)/repo/wal/00000001/\(seg).zst"
        var bytes = try #require(FileManager.default.contents(atPath: object))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: object))
        let r = try c.cairn(["wal-fetch", seg, "\(c.dir)/out"])
        #expect(r.status == ErrorCode.walFetchFatalExitCode)
        #expect(r.stderr.contains("[data.corrupt]"))
        #expect(!FileManager.default.fileExists(atPath: "\(c.dir)/out"))
    }
}
