import CairnBase
import Foundation
import TestSupport
import Testing

/// The commands that cover every repository (`init`, `list`, `info`, `verify`, `expire`, `check`, `doctor`,
/// `report`) on a real cluster with two repositories, a local folder and S3 (moto): each repository's section under
/// its heading, its result under its name in JSON, a lagging one named by `doctor`, and one made unreadable
/// reported while the other still works, the command then failing.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct SeveralRepositoriesCLITests {
    static func cluster(_ name: String) throws -> ScratchCluster {
        try ScratchCluster(name: name, settings: ["archive_timeout = 60"]) { dir, conninfo in
            try TestRepository.config(
                [.local, .s3], dir: dir, conninfo: conninfo,
                extra: "retention:\n  recovery_window: 1d\n  min_full_backups: 1")
        }
    }

    static func expectBothHeadings(
        _ r: ProcessResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(
            r.stdout.contains("repository local-1 ("), "\(what): \(r.stdout)\(r.stderr)", sourceLocation: sourceLocation
        )
        #expect(
            r.stdout.contains("repository s3-2 (s3://"), "\(what): \(r.stdout)\(r.stderr)",
            sourceLocation: sourceLocation)
    }

    /// The index of `needle` in `text` (to check the order of sections).
    static func at(_ needle: String, _ text: String) -> String.Index? { text.range(of: needle)?.lowerBound }

    @Test func everyCommandCoversBothRepositories() throws {
        let c = try Self.cluster("several-cli")
        defer { c.destroy() }
        let initialized = try c.cairn(["init"])
        #expect(initialized.status == 0, "\(initialized.stdout)\(initialized.stderr)")
        Self.expectBothHeadings(initialized, "init")
        #expect(initialized.stdout.components(separatedBy: "created repository").count == 3, "\(initialized.stdout)")
        #expect(try c.cairn(["init"]).stdout.components(separatedBy: "nothing to do").count == 3, "init again is fine")

        let id = try Self.backupOfATable(c)

        let list = try c.cairn(["list"])
        #expect(list.status == 0, "\(list.stderr)")
        Self.expectBothHeadings(list, "list")
        #expect(list.stdout.components(separatedBy: id).count == 3, "the backup in both: \(list.stdout)")
        let local = try #require(Self.at("repository local-1", list.stdout))
        let s3 = try #require(Self.at("repository s3-2", list.stdout))
        #expect(local < s3, "the primary first")

        let listJSON = try c.cairn(["list", "--json"])
        #expect(listJSON.status == 0)
        let parsed = try JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [String: Any]
        let entries = try #require(parsed?["repositories"] as? [[String: Any]])
        #expect(entries.map { $0["name"] as? String } == ["local-1", "s3-2"])
        for e in entries {
            #expect((e["result"] as? [[String: Any]])?.first?["id"] as? String == id, "\(e)")
            #expect(e["error"] == nil)
        }

        let info = try c.cairn(["info"])
        #expect(info.status == 0, "\(info.stderr)")
        Self.expectBothHeadings(info, "info")
        #expect(info.stdout.components(separatedBy: "recoverable window").count == 3, "\(info.stdout)")
        #expect(try c.cairn(["info", "--json"]).stdout.contains("\"system_identifier\""))

        let verify = try c.cairn(["verify"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        Self.expectBothHeadings(verify, "verify")
        #expect(verify.stdout.components(separatedBy: "repository OK").count == 3, "\(verify.stdout)")

        let expire = try c.cairn(["expire", "--dry-run"])
        #expect(expire.status == 0, "\(expire.stderr)")
        Self.expectBothHeadings(expire, "expire")
        #expect(expire.stdout.components(separatedBy: "keep   backup \(id)").count == 3, "\(expire.stdout)")
        let expireRun = try c.cairn(["expire", "--json"])
        #expect(expireRun.status == 0, "\(expireRun.stderr)")
        #expect(expireRun.stdout.components(separatedBy: "\"deleted_objects\"").count == 3, "\(expireRun.stdout)")

        let check = try c.cairn(["check"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        Self.expectBothHeadings(check, "check")
        #expect(check.stdout.components(separatedBy: "create-only    ok").count == 3, "\(check.stdout)")

        let doctor = try c.cairn(["doctor"])
        Self.expectBothHeadings(doctor, "doctor")
        #expect(doctor.stdout.contains("OK        repository_lag: repository s3-2 holds every committed backup"))
        #expect(doctor.stdout.hasPrefix("cairn doctor:") && doctor.stdout.contains("\ncluster\n"), "\(doctor.stdout)")

        // A backup only the primary takes: s3-2 lags, and doctor says how to catch it up.
        #expect(try c.cairn(["--repo", "local-1", "backup"]).status == 0)
        let lagging = try c.cairn(["doctor", "--json"])
        #expect(lagging.status >= 1, "\(lagging.stdout)")
        #expect(lagging.stdout.contains("\"check\" : \"repository_lag\""), "\(lagging.stdout)")
        #expect(lagging.stdout.contains("run `cairn copy --to s3-2`"), "\(lagging.stdout)")
        #expect(lagging.stdout.contains("\"repositories\""))

        let month = String(ISO8601DateFormatter().string(from: Date()).prefix(7))
        let out = c.dir + "/reports"
        try Run.shell("mkdir -p \(out) && chown postgres \(out)")
        let report = try c.cairn(["report", "--month", month, "--output", out])
        #expect(report.status == 0, "\(report.stdout)\(report.stderr)")
        Self.expectBothHeadings(report, "report")
        #expect(report.stdout.components(separatedBy: "reports/\(month)/report.{md,html,json}").count == 3)
        for name in ["local-1", "s3-2"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(name)/report.md"), "the report of \(name)")
        }
    }

    @Test func anUnreadableRepositoryIsReportedAndTheOtherStillWorks() throws {
        let c = try Self.cluster("several-cli-down")
        defer {
            _ = try? Run.shell("chmod 755 \(c.dir)/repo-local-1")
            c.destroy()
        }
        #expect(try c.cairn(["init"]).status == 0)
        let id = try Self.backupOfATable(c)
        // The primary's folder becomes unreadable to the postgres user (who runs cairn here).
        try Run.shell("chmod 000 \(c.dir)/repo-local-1")

        for args in [["list"], ["info"], ["verify"], ["expire"], ["check"], ["report"]] {
            let r = try c.cairn(args)
            #expect(r.status != 0, "\(args): \(r.stdout)\(r.stderr)")
            Self.expectBothHeadings(r, "\(args)")
            #expect(r.stderr.contains("cairn: error: repository local-1: "), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("HINT: ") || args == ["check"], "\(args): \(r.stderr)")
            let s3 = try #require(r.stdout.range(of: "repository s3-2 ("))
            let section = r.stdout[s3.upperBound...]
            #expect(!section.contains("FAILED") && !section.contains("FAIL "), "s3-2 works: \(args): \(r.stdout)")
            if args != ["check"] {
                #expect(r.stdout.contains("FAILED: "), "\(args): \(r.stdout)")
            }
        }
        #expect(try c.cairn(["list"]).stdout.contains(id), "the backup is still listed from s3-2")
        #expect(try c.cairn(["verify"]).stdout.contains("repository OK"), "s3-2 verifies")

        let json = try c.cairn(["list", "--json"])
        #expect(json.status != 0)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let entries = try #require(parsed?["repositories"] as? [[String: Any]])
        #expect((entries[0]["error"] as? [String: Any])?["code"] != nil, "\(entries[0])")
        #expect(entries[1]["error"] == nil && entries[1]["result"] != nil, "\(entries[1])")

        let doctor = try c.cairn(["doctor"])
        #expect(doctor.status == 2, "\(doctor.stdout)")
        Self.expectBothHeadings(doctor, "doctor")
        #expect(doctor.stdout.contains("CRITICAL  repository: the repository is not usable"), "\(doctor.stdout)")
    }

    /// A table, a full backup of it (into both repositories), its WAL archived; the backup's id.
    static func backupOfATable(_ c: ScratchCluster) throws -> String {
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        let backup = try c.cairn(["backup", "--json"])
        #expect(backup.status == 0, "\(backup.stderr)")
        try c.switchAndWaitForArchive()
        return try #require(
            backup.stdout.split(separator: "\"").first { $0.hasSuffix("F") && $0.count == 16 }.map(String.init))
    }
}
