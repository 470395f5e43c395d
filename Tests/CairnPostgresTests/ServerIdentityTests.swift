import Foundation
import Testing

@testable import CairnPostgres

// Unit tests for Sources/CairnPostgres/ServerIdentity.swift: parsing postmaster.pid and comparing it with what the
// server reports. No cluster needed (the integration test is BackupTests.filesMethodRefusesAnotherServersFiles).

@Suite struct ServerIdentityTests {
    /// A lock file as PostgreSQL 15 writes it for a running server.
    static let running = """
        4711
        /var/lib/postgresql/15/main
        1764729600
        5432
        /var/run/postgresql
        *
          5432001    163840
        ready   \n
        """

    @Test func parsesTheFirstFourLines() {
        #expect(
            PostmasterPid.parse(Self.running)
                == PostmasterPid(
                    pid: 4711, dataDirectory: "/var/lib/postgresql/15/main", startTime: 1_764_729_600, port: 5432))
    }

    @Test(arguments: [
        "", "4711\n", "4711\n/data\n1764729600\n", "x\n/data\n1764729600\n5432\n", "4711\n/data\nsoon\n5432\n",
        "4711\n/data\n1764729600\n0\n", "4711\n\n1764729600\n5432\n", "-3\n/data\n1764729600\n5432\n"
    ])
    func refusesIncompleteOrForeignText(text: String) {
        #expect(PostmasterPid.parse(text) == nil)
    }

    static func lockFile(_ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pmpid-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try text.write(toFile: dir + "/postmaster.pid", atomically: true, encoding: .utf8)
        return dir
    }

    @Test func matchesTheServerThatWroteIt() throws {
        let dir = try Self.lockFile(Self.running)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(
            (try? LocalServerProof.matches(serverStartTime: 1_764_729_600, serverPort: 5432, dataDirectory: dir).get())
                != nil)
        // The server records its start time a moment after writing the lock file.
        #expect(
            (try? LocalServerProof.matches(serverStartTime: 1_764_729_602, serverPort: 5432, dataDirectory: dir).get())
                != nil)
    }

    @Test func refusesAnotherPortOrStartTime() throws {
        let dir = try Self.lockFile(Self.running)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func reason(_ start: Int64, _ port: Int) -> String? {
            if case .failure(let m) = LocalServerProof.matches(
                serverStartTime: start, serverPort: port, dataDirectory: dir)
            {
                return m.reason
            }
            return nil
        }
        #expect(reason(1_764_729_600, 5433)?.contains("port 5432") == true)
        #expect(reason(1_764_729_600 + 3600, 5432)?.contains("started at") == true)
        #expect(reason(1_764_729_599, 5432)?.contains("started at") == true)
    }

    @Test func refusesAMissingOrDamagedLockFile() throws {
        let dir = try Self.lockFile("4711\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard
            case .failure(let damaged) = LocalServerProof.matches(
                serverStartTime: 1, serverPort: 5432, dataDirectory: dir)
        else {
            Issue.record("a damaged lock file proves nothing")
            return
        }
        #expect(damaged.reason.contains("not a complete postmaster.pid"))
        guard
            case .failure(let missing) = LocalServerProof.matches(
                serverStartTime: 1, serverPort: 5432, dataDirectory: dir + "/nope")
        else {
            Issue.record("a missing lock file proves nothing")
            return
        }
        #expect(missing.reason.contains("does not exist"))
    }
}
