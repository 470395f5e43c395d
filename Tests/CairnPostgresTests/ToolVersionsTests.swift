import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnPostgres

/// Programs of the right major: version parsing, finding the folder by major, and the mismatch error.
@Suite struct ToolVersionsTests {
    @Test(arguments: [
        ("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n", 15),
        ("pg_ctl (PostgreSQL) 18.6\n", 18),
        ("postgres (PostgreSQL) 18devel", 18),
        ("psql (PostgreSQL) 17beta1", 17),
        ("pg_dump (PostgreSQL) 9.6.24", 9),
        ("pg_restore (PostgreSQL) 16.4 (Ubuntu 16.4-1.pgdg22.04+1)", 16)
    ])
    func theMajorOfAVersionLine(line: String, major: Int) {
        #expect(ToolVersions.parseMajor(line) == major)
    }

    @Test func noVersionIsNil() {
        #expect(ToolVersions.parseMajor("") == nil)
        #expect(ToolVersions.parseMajor("usage: pg_dump [OPTION]...") == nil)
    }

    @Test func theFolderIsFoundByTheMajor() async {
        let debian: Set<String> = ["/usr/lib/postgresql/18/bin/pg_ctl"]
        #expect(
            await ToolVersions.locate(
                major: 18, environment: [:], fileExists: { debian.contains($0) },
                pgConfigBindir: { _ in
                    Issue.record("pg_config not needed"); return nil
                })
                == "/usr/lib/postgresql/18/bin")
        let rhel: Set<String> = ["/usr/pgsql-17/bin/pg_ctl"]
        #expect(
            await ToolVersions.locate(major: 17, environment: [:], fileExists: { rhel.contains($0) })
                == "/usr/pgsql-17/bin")
        // Neither: pg_config on PATH says where (its major is checked by the caller).
        let onPath: Set<String> = ["/opt/pg/bin/pg_config"]
        #expect(
            await ToolVersions.locate(
                major: 18, environment: ["PATH": "/nowhere:/opt/pg/bin"], fileExists: { onPath.contains($0) },
                pgConfigBindir: { $0 == "/opt/pg/bin/pg_config" ? "/opt/pg/bin\n" : nil }) == "/opt/pg/bin")
        #expect(
            await ToolVersions.locate(major: 18, environment: ["PATH": "/nowhere"], fileExists: { _ in false }) == nil)
    }

    /// A folder of fake programs that print `--version` as PostgreSQL `major`'s would.
    static func fakeBin(major: Int, tools: [String]) throws -> String {
        let dir = NSTemporaryDirectory() + "cairn-fakebin-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for t in tools {
            try Run.writeScript("#!/bin/sh\necho '\(t) (PostgreSQL) \(major).2'\n", to: dir + "/" + t)
        }
        return dir
    }

    @Test func programsOfTheRightMajorPass() async throws {
        let dir = try Self.fakeBin(major: 18, tools: ["pg_dump", "pg_dumpall"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = try await ToolRunner(binDirectory: dir).matching(
            major: 18, ["pg_dump", "pg_dumpall", "pg_absent"], for: "the cluster")
        #expect(runner.binDirectory == dir)
    }

    @Test func aMismatchNamesBothMajorsAndTheFix() async throws {
        let dir = try Self.fakeBin(major: 15, tools: ["pg_ctl", "pg_verifybackup"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            _ = try await ToolRunner(binDirectory: dir).matching(
                major: 18, ["pg_ctl", "pg_verifybackup"], for: "backup 20261203T010000F")
            Issue.record("a PostgreSQL 15 pg_ctl passed for an 18 backup")
        } catch let e as CairnError {
            #expect(e.code == .pgVersion)
            #expect(
                e.message
                    == "pg_ctl in \(dir) is PostgreSQL 15 but backup 20261203T010000F is PostgreSQL 18: each major needs its own programs"
            )
            #expect(e.hint?.contains("cluster.bin_directory") == true)
            #expect(e.hint?.contains("/usr/lib/postgresql/18/bin") == true)
        }
    }

    @Test func aProgramThatIsNotPostgreSQLsIsRefused() async throws {
        let dir = NSTemporaryDirectory() + "cairn-fakebin-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Run.writeScript("#!/bin/sh\necho hello\n", to: dir + "/pg_dump")
        await #expect(throws: CairnError.self) {
            _ = try await ToolRunner(binDirectory: dir).matching(major: 15, ["pg_dump"], for: "the cluster")
        }
    }

    @Test func withoutAConfiguredFolderTheMajorsFolderIsUsed() async throws {
        // Debian's PostgreSQL 15 is where the tests run; an unconfigured runner finds it by the major.
        guard FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/15/bin/pg_ctl") else { return }
        let runner = try await ToolRunner(binDirectory: "").matching(major: 15, ["pg_ctl"], for: "the cluster")
        #expect(runner.binDirectory == "/usr/lib/postgresql/15/bin")
        #expect(!ToolRunner(binDirectory: "").isConfigured)
        // No folder of a major that is not installed: a clear error, not a failure half-way.
        do {
            _ = try await ToolRunner(binDirectory: "").matching(major: 11, ["pg_ctl"], for: "the cluster")
            Issue.record("found programs of PostgreSQL 11")
        } catch let e as CairnError {
            #expect(e.code == .pgVersion)
            #expect(e.message.contains("PostgreSQL 11"))  // none found, or pg_config's folder is of another major
        }
    }
}
