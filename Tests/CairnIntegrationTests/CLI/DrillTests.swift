import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

/// `cairn drill` and `cairn verify` on real backups: a healthy repository passes; damage and missing WAL are found
/// and named; the scratch cluster is always gone afterwards.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct DrillTests {
    static func drillPolicy(_ dir: String, assertions: String = "") -> String {
        """
        drills:
          backup: latest
          target: random
          scratch_directory: \(dir)/drills
          timeout: 5m
          assertions:
            - name: orders are there
              database: postgres
              sql: SELECT count(*) >= 1000 FROM orders
            - name: every database answers
              database: "*"
              sql: SELECT true
        \(assertions)
        """
    }

    /// A cluster with a backup and later WAL; `files` are written into its folder before the configuration is used.
    static func makeCluster(
        _ name: String, repo: RepoKind, major: PGMajor = .v15, extra: String = "", files: [String: String] = [:],
        masterKey: String? = nil, assertions: String = ""
    ) throws -> ScratchCluster {
        let c = try ScratchCluster(name: name, major: major) { dir, conninfo in
            try Run.shell("mkdir -p \(dir)/drills && chown postgres \(dir)/drills")
            for (file, text) in files {
                try text.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8)
                try Run.shell("chown postgres \(dir)/\(file)")
            }
            return try TestRepository.config(
                repo, dir: dir, conninfo: conninfo, major: major,
                extra: drillPolicy(dir, assertions: assertions) + "\n" + extra,
                masterKey: masterKey)
        }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE orders (id serial PRIMARY KEY, item text, big text)")
        try c.psql(
            "INSERT INTO orders (item, big) SELECT 'item ' || g, repeat(md5(g::text), 200) FROM generate_series(1, 2000) g"
        )
        try c.psql("CREATE INDEX ON orders (item)")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO orders (item) SELECT 'later ' || g FROM generate_series(1, 500) g")
        try c.switchAndWaitForArchive()
        return c
    }

    static func drillFolderIsEmpty(_ c: ScratchCluster) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/drills")) ?? []).isEmpty
    }

    @Test(arguments: PGMajor.matrix(RepoKind.standard))
    func aHealthyRepositoryPassesAndRecordsTheRTO(repo: RepoKind, major: PGMajor) throws {
        let c = try Self.makeCluster("drill-\(repo)-\(major)", repo: repo, major: major)
        defer { c.destroy() }
        let r = try c.cairn(["drill", "--json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("\"verdict\" : \"pass\""))
        for check in [
            "restore", "pg_verifybackup", "recovery", "target reached", "pg_amcheck", "every table readable",
            "assertion: orders are there", "assertion: every database answers"
        ] {
            #expect(r.stdout.contains("\"name\" : \"\(check)\""), "check \(check)")
        }
        for phase in ["restore_seconds", "replay_seconds", "checks_seconds", "total_seconds"] {
            #expect(r.stdout.contains(phase))
        }
        #expect(Self.drillFolderIsEmpty(c), "the scratch cluster is removed")
        // (This cluster's scratch folder: the other repository kind's case runs its drills at the same time.)
        #expect(
            !(try Run.shell("pgrep -f \(c.dir)/drills/", check: false).stdout.contains(where: \.isNumber)),
            "no scratch server left running")
        // The record is in the repository, and the drill never archived into it (no new timeline).
        let info = try c.cairn(["info", "--json"]).stdout
        #expect(!info.contains("\"timeline\" : 2"))
        let catalogRepo = try ExpireTests.repository(c)
        #expect(try DrillRecord.loadAll(from: catalogRepo).count == 1)
        // Text output with the end of the archive as the target.
        let t = try c.cairn(["drill", "--target-time", "2099-01-01 00:00:00+00"])
        #expect(t.status == ErrorCode.dataCorrupt.exitCode)
        #expect(t.stdout.contains("FAIL plan"))
    }

    /// Started as root, the drill runs as the cluster's owner (PostgreSQL's server programs refuse root): it passes,
    /// what it creates belongs to that user, so the next drill as that user passes too; a failed drill says why on
    /// stderr also with --json.
    @Test func aDrillStartedAsRootRunsAsTheClusterOwner() throws {
        let c = try Self.makeCluster("drill-root", repo: .local)
        defer { c.destroy() }
        try FileManager.default.removeItem(atPath: c.dir + "/drills")  // the drill creates its scratch folder
        let config = try #require(c.config)
        let r = try Run.program(Run.installedCairn, ["--config", config, "drill", "--json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("\"verdict\" : \"pass\""))
        for dir in ["drills", "repo/drills"] {
            #expect(
                try Run.shell("stat -c %U \(c.dir)/\(dir)").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    == "postgres",
                "\(dir) belongs to the cluster's owner")
        }
        let again = try c.cairn(["drill", "--json"])
        #expect(again.status == 0, "the next drill as postgres: \(again.stderr)")
        let failed = try Run.program(
            Run.installedCairn, ["--config", config, "drill", "--json", "--target-time", "2099-01-01 00:00:00+00"])
        #expect(failed.status == ErrorCode.dataCorrupt.exitCode)
        #expect(failed.stdout.contains("\"verdict\" : \"fail\""))
        #expect(failed.stderr.contains("FAILED at plan:"), "the verdict on stderr: \(failed.stderr)")
        #expect(Self.drillFolderIsEmpty(c))
    }

    @Test func aDamagedObjectFailsTheDrillAndVerifyNamesIt() throws {
        let c = try Self.makeCluster("drill-damaged", repo: .local)
        defer { c.destroy() }
        let bundles = try Run.shell("find \(c.dir)/repo/backups -name '*.tar.zst'").stdout.split(separator: "\n").map(
            String.init)
        let victim = try #require(bundles.first)
        var bytes = try #require(FileManager.default.contents(atPath: victim))
        bytes[bytes.count / 3] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: victim))
        let r = try c.cairn(["drill"])
        #expect(r.status == ErrorCode.dataCorrupt.exitCode)
        #expect(r.stdout.contains("FAIL"))
        #expect(r.stdout.contains("FAIL restore"), "\(r.stdout)")
        #expect(r.stdout.contains("damaged"))
        #expect(Self.drillFolderIsEmpty(c))
        let v = try c.cairn(["verify"])
        #expect(v.status == ErrorCode.dataCorrupt.exitCode)
        #expect(
            v.stdout.contains("ERROR: damaged-object \(victim.replacingOccurrences(of: c.dir + "/repo/", with: ""))"))
    }

    @Test func aMissingWalSegmentFailsTheDrillWithItsName() throws {
        let c = try Self.makeCluster("drill-gap", repo: .local)
        defer { c.destroy() }
        // Two more segments after the backup, then lose the first of them.
        try c.psql("INSERT INTO orders (item) SELECT 'gap ' || g FROM generate_series(1, 500) g")
        try c.switchAndWaitForArchive()
        try c.psql("INSERT INTO orders (item) SELECT 'after gap ' || g FROM generate_series(1, 500) g")
        try c.switchAndWaitForArchive()
        let segs = try Run.shell("ls \(c.dir)/repo/wal/00000001/ | grep -v backup | sort").stdout.split(separator: "\n")
            .map(String.init)
        let lost = String(segs[segs.count - 2].dropLast(4))
        try FileManager.default.removeItem(atPath: "\(c.dir)/repo/wal/00000001/\(lost).zst")
        let policy = c.dir + "/latest.yaml"
        try "backup: latest\ntarget: latest\nscratch_directory: \(c.dir)/drills\n".write(
            toFile: policy, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(policy)")
        let r = try c.cairn(["drill", "--policy", policy])
        #expect(r.status == ErrorCode.dataCorrupt.exitCode, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("FAIL target reached"))
        #expect(r.stdout.contains("missing"))
        #expect(Self.drillFolderIsEmpty(c))
        let v = try c.cairn(["verify", "--json"])
        #expect(v.status == ErrorCode.walMissing.exitCode)
        #expect(v.stdout.contains("\"\(lost)\""))
    }

    @Test func verifyRereadsOnlyWhatIsNew() throws {
        let c = try Self.makeCluster("verify-incremental", repo: .s3)
        defer { c.destroy() }
        let first = try c.cairn(["verify", "--json"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let second = try c.cairn(["verify", "--json"])
        try c.psql("INSERT INTO orders (item) SELECT 'new ' || g FROM generate_series(1, 100) g")
        try c.switchAndWaitForArchive()
        let third = try c.cairn(["verify", "--json"])
        let full = try c.cairn(["verify", "--json", "--full"])
        func field(_ s: String, _ name: String) -> Int {
            Int(s.split(separator: "\n").first { $0.contains("\"\(name)\"") }?.filter(\.isNumber) ?? "") ?? -1
        }
        let (r1, r2, r3, rf) = (
            field(first.stdout, "bytes_read"), field(second.stdout, "bytes_read"), field(third.stdout, "bytes_read"),
            field(full.stdout, "bytes_read")
        )
        #expect(r1 > 0 && r2 == 0 && r3 > 0 && r3 < r1 && rf > r1)
        #expect(field(second.stdout, "objects_checked") == 0)
        Measurements.record([
            "verify incremental (s3): first run read \(r1) B in \(field(first.stdout, "objects_checked")) objects; repeat read \(r2) B; after one new segment read \(r3) B in \(field(third.stdout, "objects_checked")) objects; --full read \(rf) B"
        ])
    }

    /// A month with several drills: the report in three formats, the HTML rendered by headless Chromium.
    @Test func theMonthlyReportShowsEveryDrill() throws {
        let c = try Self.makeCluster("report", repo: .local)
        defer { c.destroy() }
        var ids: [String: String] = [:]
        for (name, extra) in [
            ("pass1", ""), ("pass2", ""),
            ("fail", "assertions:\n  - name: impossible\n    database: postgres\n    sql: SELECT false\n")
        ] {
            let policy = c.dir + "/\(name).yaml"
            try "backup: latest\ntarget: end\nscratch_directory: \(c.dir)/drills\n\(extra)".write(
                toFile: policy, atomically: true, encoding: .utf8)
            try Run.shell("chown postgres \(policy)")
            let r = try c.cairn(["drill", "--policy", policy, "--json"])
            ids[name] = r.stdout.split(separator: "\"").first { $0.hasSuffix("D") && $0.count == 16 }.map(String.init)
        }
        #expect(ids.count == 3)
        #expect(try c.cairn(["verify"]).status == 0)
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM"
        let month = f.string(from: Date())
        let out = c.dir + "/report"
        try Run.shell("mkdir -p \(out) && chown postgres \(out)")
        let r = try c.cairn(["report", "--month", month, "--output", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("NOT VERIFIED \(month)"), "one drill failed: \(r.stdout)")
        let md = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        let json = try String(contentsOfFile: out + "/report.json", encoding: .utf8)
        for (name, id) in ids {
            #expect(md.contains("| \(id) |"))
            #expect(json.contains("\"\(id)\""))
            #expect(md.contains(name == "fail" ? "FAIL: assertion: impossible" : "PASS"))
        }
        #expect(FileManager.default.fileExists(atPath: c.dir + "/repo/reports/\(month)/report.html"))

        // Headless Chromium renders the page offline to a PNG, and its text carries the verdicts.
        let chromium = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
        let shot = try Run.program(
            "/usr/bin/chromium",
            chromium + [
                "--screenshot=\(out)/report.png", "--window-size=1100,2600",
                "file://\(out)/report.html"
            ], environment: ["HOME": out])
        #expect(shot.status == 0, "\(shot.stderr)")
        let png = try #require(FileManager.default.contents(atPath: out + "/report.png"))
        #expect(png.count > 20_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
        let dom = try Run.program(
            "/usr/bin/chromium", chromium + ["--dump-dom", "file://\(out)/report.html"], environment: ["HOME": out])
        let text = dom.stdout.replacingOccurrences(of: "<[^>]+>", with: " ", options: .regularExpression)
        #expect(text.contains("PASS") && text.contains("FAIL: assertion: impossible"))
        for id in ids.values { #expect(text.contains(id)) }
        #expect(text.contains("NOT VERIFIED \(month)"))
    }
}
