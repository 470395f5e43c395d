import CairnBase
import CairnCore
import Foundation
import TestSupport
import Testing

/// `cairn doctor` against real clusters: a misconfigured one (archiving off, no backup yet) gets every problem
/// with its fix and exit 2; a healthy one (S3 over TLS, a backup, a passing drill) passes.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct DoctorCommandTests {
    @Test func aMisconfiguredClusterListsEachProblemWithItsFix() throws {
        let c = try ScratchCluster(name: "doctor-bad", settings: ["archive_mode = off", "archive_command = ''"]) {
            dir, conninfo in
            try TestRepository.config(.s3, dir: dir, conninfo: conninfo)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let r = try c.cairn(["doctor"])
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        for line in [
            "CRITICAL  archive_mode: archive_mode is off", "fix: ALTER SYSTEM SET archive_mode = on",
            "CRITICAL  archive_command:", "wal-push %p';", "WARNING   archive_timeout:",
            "CRITICAL  newest_full_backup: there is no full backup", "fix: cairn backup",
            "WARNING   drill: no drill has ever passed", "OK        tls: the repository endpoint uses TLS",
            // A 15 cluster made without initdb -k: damaged pages would go unnoticed.
            "WARNING   data_checksums: data checksums are off", "pg_checksums --enable",
            "OK        postgres_version: PostgreSQL 15."
        ] {
            #expect(r.stdout.contains(line), "missing \"\(line)\" in:\n\(r.stdout)")
        }
        let j = try c.cairn(["doctor", "--json"])
        #expect(j.status == 2)
        #expect(j.stdout.contains("\"worst\" : \"critical\""))
    }

    /// Healthy includes data checksums (initdb -k on 15; the default on 18) and, on 18, summarize_wal = on.
    @Test(arguments: PGMajor.tested)
    func aHealthyClusterPasses(major: PGMajor) throws {
        let c = try ScratchCluster(
            name: "doctor-good-\(major)", major: major, checksums: true, settings: ["archive_timeout = 60"]
        ) { dir, conninfo in
            try Run.shell("mkdir -p \(dir)/drills && chown postgres \(dir)/drills")
            try "recovery_window: 30d\n".write(toFile: dir + "/retention.yaml", atomically: true, encoding: .utf8)
            try Run.shell("chown postgres \(dir)/retention.yaml")
            return try TestRepository.config(
                .s3, dir: dir, conninfo: conninfo, major: major,
                extra: "retention: retention.yaml\ndrills:\n  target: end\n  scratch_directory: \(dir)/drills\n")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        let drill = try c.cairn(["drill"])
        #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
        let r = try c.cairn(["doctor", "--json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(
            !r.stdout.contains("\"severity\" : \"warning\"") && !r.stdout.contains("\"severity\" : \"critical\""),
            "\(r.stdout)")
        var checks = [
            "archive_command", "archiver", "clock_skew", "newest_full_backup", "drill", "window", "postgres_version",
            "data_checksums"
        ]
        if major.rawValue >= 17 { checks.append("summarize_wal") }
        for check in checks {
            #expect(r.stdout.contains("\"check\" : \"\(check)\""), "check \(check) in \(r.stdout)")
        }
    }
}
