import CairnBase
import Foundation
import TestSupport
import Testing

/// Asynchronous archiving (`archive.async`): a backlog of `.ready` files starts one background worker that pushes
/// them in parallel, and PostgreSQL's calls are acknowledged from the records of those confirmed pushes — only
/// for the same file content and repository.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct WalPushAheadTests {
    static func workerRunning() -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).contains { pid in
            pid.allSatisfy(\.isNumber)
                && (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
                    .map { String(decoding: $0, as: UTF8.self).contains("wal-push-ahead") } ?? false)
        }
    }

    @Test func aBacklogIsPushedByTheWorkerAndAcknowledgedFromVerifiedRecords() throws {
        let c = try ScratchCluster(name: "pushahead") {
            try TestRepository.config(
                .s3, dir: $0, conninfo: $1, limits: ["parallelism: 4"], extra: "archive:\n  async: true")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        #expect(try c.cairn(["backup"]).status == 0)
        // A backlog: archiving stopped while 12 segments fill.
        try c.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
        try c.psql("SELECT pg_reload_conf()")
        try c.psql("CREATE TABLE t (i int, filler text)")
        for i in 0..<12 {
            try c.psql(
                "INSERT INTO t SELECT \(i), repeat('x', 100) FROM generate_series(1, 1000); SELECT pg_switch_wal()")
        }
        let status = c.data + "/pg_wal/archive_status"
        let ready = try FileManager.default.contentsOfDirectory(atPath: status).filter { $0.hasSuffix(".ready") }
            .map { String($0.dropLast(6)) }.filter { $0.count == 24 }.sorted()
        #expect(ready.count >= 12)
        func push(_ name: String) throws -> ProcessResult {
            try Run.shell(
                "cd \(c.data) && runuser -u postgres -- \(Run.installedCairn) --config \(c.config!) wal-push --json pg_wal/\(name)",
                check: false)
        }
        let spool = c.data + "/pg_wal/cairn-archive"

        // The first call starts the worker and is acknowledged from its record; the worker pushes the whole
        // backlog (every file recorded and stored) and exits when idle.
        let first = try push(ready[0])
        #expect(
            first.status == 0 && first.stdout.contains("\"outcome\" : \"pushed-ahead\""),
            "\(first.stdout)\(first.stderr)")
        let deadline = Date().addingTimeInterval(60)
        while Self.workerRunning() && Date() < deadline { usleep(100_000) }
        #expect(!Self.workerRunning(), "the worker exits when idle")
        let records = Set(try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".ok") })
        let log =
            ((try? String(contentsOfFile: spool + "/worker.log", encoding: .utf8)) ?? "") + "\nspool: "
            + ((try? FileManager.default.contentsOfDirectory(atPath: spool).sorted().joined(separator: " ")) ?? "")
            + ((try? FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".failed") }
                .map { try String(contentsOfFile: spool + "/" + $0, encoding: .utf8) }.joined()) ?? "")
            + "\nstatus: "
            + ((try? FileManager.default.contentsOfDirectory(atPath: status).sorted().joined(separator: " ")) ?? "")
        #expect(records.isSuperset(of: ready.map { $0 + ".ok" }), "\(records.sorted())\n\(log)")
        let raw = try ExpireTests.repository(c)
        for name in ready { #expect(try raw.head("wal/\(name.prefix(8))/\(name).zst") != nil, "\(name) is stored") }

        // The next call is acknowledged from its record without the repository.
        let second = try push(ready[1])
        #expect(
            second.status == 0 && second.stdout.contains("\"outcome\" : \"pushed-ahead\""),
            "\(second.stdout)\(second.stderr)")
        // An acknowledgement loads neither libcurl nor libpq (opened on first use, they were half of its CPU);
        // a command that talks to S3 does load libcurl.
        let traced = try Run.shell(
            "cd \(c.data) && LD_DEBUG=libs runuser -u postgres -- \(Run.installedCairn) --config \(c.config!) wal-push pg_wal/\(ready[4])",
            check: false)
        #expect(traced.status == 0 && traced.stderr.contains("libzstd"), "\(traced.stderr.suffix(2000))")
        #expect(!traced.stderr.contains("libcurl") && !traced.stderr.contains("libpq"), "\(traced.stderr.suffix(2000))")
        let s3 = try Run.shell(
            "LD_DEBUG=libs runuser -u postgres -- \(Run.installedCairn) --config \(c.config!) list", check: false)
        #expect(s3.status == 0 && s3.stderr.contains("libcurl.so.4"), "\(s3.stderr.suffix(2000))")

        // A record that does not match the file now in pg_wal (another inode), or that names another repository, is not trusted:
        // it is removed and the file pushed again (by wal-push, or by a worker that then records it correctly).
        let forged = "\(spool)/\(ready[2]).ok"
        try String(contentsOfFile: forged, encoding: .utf8)
            .replacingOccurrences(of: #""inode":[0-9]+"#, with: #""inode":1"#, options: .regularExpression)
            .write(toFile: forged, atomically: true, encoding: .utf8)
        let third = try push(ready[2])
        #expect(third.status == 0, "\(third.stderr)")
        #expect(
            !((try? String(contentsOfFile: forged, encoding: .utf8)) ?? "").contains(#""inode":1,"#),
            "the forged record was not used")
        let other = "\(spool)/\(ready[3]).ok"
        try String(contentsOfFile: other, encoding: .utf8).replacingOccurrences(of: "s3:", with: "s3-elsewhere:")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let fourth = try push(ready[3])
        #expect(fourth.status == 0, "\(fourth.stderr)")
        #expect(
            !((try? String(contentsOfFile: other, encoding: .utf8)) ?? "").contains("s3-elsewhere:"),
            "the foreign record was not used")

        // PostgreSQL drains the rest and new WAL; records of archived files are swept; the repository verifies
        // and a restore has every row.
        try c.psql("ALTER SYSTEM SET archive_command = '\(Run.installedCairn) --config \(c.config!) wal-push %p'")
        try c.psql("SELECT pg_reload_conf()")
        try c.psql("INSERT INTO t SELECT 99, 'last' FROM generate_series(1, 10)")
        try c.switchAndWaitForArchive()
        try c.switchAndWaitForArchive()
        #expect(try FileManager.default.contentsOfDirectory(atPath: status).filter { $0.hasSuffix(".ready") }.isEmpty)
        let left = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".ok") }
        #expect(left.count <= 1, "records of archived files are swept: \(left)")
        #expect(try c.cairn(["verify", "--full"]).status == 0)
        let expected = try c.psql("SELECT count(*) FROM t")
        let restored = try c.restoreAndStart()
        defer { restored.destroy() }
        #expect(try restored.psql("SELECT count(*) FROM t") == expected)
    }

    /// Records name the store's identity, endpoint included: after the configuration moves to a bucket of the
    /// same name and prefix behind another endpoint, a record of the first cannot acknowledge a file the second
    /// never received.
    @Test func aRecordDoesNotAcknowledgeForTheSameBucketOnAnotherEndpoint() throws {
        let c = try ScratchCluster(name: "pushahead-endpoint") {
            try TestRepository.config(
                .s3, dir: $0, conninfo: $1, limits: ["parallelism: 2"], extra: "archive:\n  async: true")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
        try c.psql("SELECT pg_reload_conf()")
        try c.psql("CREATE TABLE t (i int)")
        for i in 0..<4 { try c.psql("INSERT INTO t VALUES (\(i)); SELECT pg_switch_wal()") }
        let status = c.data + "/pg_wal/archive_status"
        let ready = try FileManager.default.contentsOfDirectory(atPath: status).filter { $0.hasSuffix(".ready") }
            .map { String($0.dropLast(6)) }.filter { $0.count == 24 }.sorted()
        #expect(ready.count >= 4)
        func push(_ name: String) throws -> ProcessResult {
            try Run.shell(
                "cd \(c.data) && runuser -u postgres -- \(Run.installedCairn) --config \(c.config!) wal-push --json pg_wal/\(name)",
                check: false)
        }
        let first = try push(ready[0])
        #expect(
            first.status == 0 && first.stdout.contains("\"outcome\" : \"pushed-ahead\""),
            "\(first.stdout)\(first.stderr)")
        let deadline = Date().addingTimeInterval(60)
        while Self.workerRunning() && Date() < deadline { usleep(100_000) }
        let spool = c.data + "/pg_wal/cairn-archive"
        let last = ready[ready.count - 1]
        #expect(FileManager.default.fileExists(atPath: "\(spool)/\(last).ok"), "the worker recorded \(last)")

        // The other endpoint of the emulator (plain HTTP), same bucket and prefix: a store that, as far as cairn
        // can know, never received the file (here it really lacks it).
        let key = "wal/\(last.prefix(8))/\(last).zst"
        let raw = try ExpireTests.repository(c)
        try raw.delete([key])
        let conf = try String(contentsOfFile: c.config!, encoding: .utf8)
            .replacingOccurrences(
                of: TestEnvironment.value("CAIRN_TEST_S3_TLS_ENDPOINT"),
                with: TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT"))
        #expect(conf.contains(TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT")))
        try conf.write(toFile: c.config!, atomically: true, encoding: .utf8)
        let again = try push(last)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(
            again.stdout.contains("\"outcome\" : \"stored\""),
            "pushed again, not acknowledged from the record: \(again.stdout)")
        #expect(try raw.head(key) != nil, "the segment is in the second store")
    }
}
