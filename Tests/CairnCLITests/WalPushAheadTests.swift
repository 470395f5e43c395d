import CairnBase
import Foundation
import Testing
import TestSupport

/// Asynchronous archiving (`archive.async`): with a backlog of `.ready` files, one `wal-push` pushes the next ones
/// in parallel, and PostgreSQL's later calls for them are acknowledged from the records of those confirmed pushes —
/// only for the same file content and repository.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct WalPushAheadTests {
    @Test func aBacklogIsPushedAheadAndAcknowledgedFromVerifiedRecords() throws {
        let c = try ScratchCluster(name: "pushahead") {
            try TestRepository.config(.s3, dir: $0, conninfo: $1, limits: ["parallelism: 4"], extra: "archive:\n  async: true\n  push_ahead: 6")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        #expect(try c.cairn(["backup"]).status == 0)
        // A backlog: archiving stopped while 12 segments fill.
        try c.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
        try c.psql("SELECT pg_reload_conf()")
        try c.psql("CREATE TABLE t (i int, filler text)")
        for i in 0..<12 {
            try c.psql("INSERT INTO t SELECT \(i), repeat('x', 100) FROM generate_series(1, 1000); SELECT pg_switch_wal()")
        }
        let status = c.data + "/pg_wal/archive_status"
        let ready = try FileManager.default.contentsOfDirectory(atPath: status).filter { $0.hasSuffix(".ready") }
            .map { String($0.dropLast(6)) }.filter { $0.count == 24 }.sorted()
        #expect(ready.count >= 12)
        func push(_ name: String) throws -> ProcessResult {
            try Run.shell("cd \(c.data) && runuser -u postgres -- \(Run.installedCairn) --config \(c.config!) wal-push --json pg_wal/\(name)", check: false)
        }
        let spool = c.data + "/pg_wal/cairn-archive"

        // The first call stores its own file and pushes the next six ahead, leaving a record for each.
        let first = try push(ready[0])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("\"outcome\" : \"stored\""))
        let records = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".ok") }.sorted()
        #expect(records == ready[1...6].map { $0 + ".ok" })
        let raw = try ExpireTests.repository(c)
        for name in ready[0...6] { #expect(try raw.head("wal/\(name.prefix(8))/\(name).zst") != nil, "\(name) is stored") }

        // The next call is acknowledged from its record (and pushes further files ahead meanwhile), consuming it.
        let second = try push(ready[1])
        #expect(second.status == 0 && second.stdout.contains("\"outcome\" : \"pushed-ahead\""), "\(second.stdout)\(second.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(spool)/\(ready[1]).ok"))

        // A record that does not match the file now in pg_wal, or that names another repository, is not trusted:
        // the file is pushed (found already stored with the same content).
        let forged = "\(spool)/\(ready[2]).ok"
        var record = try String(contentsOfFile: forged, encoding: .utf8)
        record = record.replacingOccurrences(of: #""sha256":"[0-9a-f]{8}"#, with: #""sha256":"00000000"#, options: .regularExpression)
        try record.write(toFile: forged, atomically: true, encoding: .utf8)
        let third = try push(ready[2])
        #expect(third.status == 0 && third.stdout.contains("\"outcome\" : \"stored\"") || third.stdout.contains("already-stored"), "\(third.stdout)")
        let other = "\(spool)/\(ready[3]).ok"
        try String(contentsOfFile: other, encoding: .utf8).replacingOccurrences(of: "s3:", with: "s3-elsewhere:")
            .write(toFile: other, atomically: true, encoding: .utf8)
        #expect(!(try push(ready[3])).stdout.contains("pushed-ahead"))

        // PostgreSQL drains the rest; every segment is archived and the repository verifies; records are all used.
        try c.psql("ALTER SYSTEM SET archive_command = '\(Run.installedCairn) --config \(c.config!) wal-push %p'")
        try c.psql("SELECT pg_reload_conf()")
        try c.switchAndWaitForArchive()
        #expect(try FileManager.default.contentsOfDirectory(atPath: status).filter { $0.hasSuffix(".ready") }.isEmpty)
        #expect(try c.cairn(["verify", "--full"]).status == 0)
        let expected = try c.psql("SELECT count(*) FROM t")
        let restored = try c.restoreAndStart()
        defer { restored.destroy() }
        #expect(try restored.psql("SELECT count(*) FROM t") == expected)
    }
}
