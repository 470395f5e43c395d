import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

/// The operator runbooks in `runbooks/`: their ```` ```sh tested ```` blocks, extracted in order.
enum Runbooks {
    /// `runbooks/` of this checkout.
    static var directory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../runbooks")
            .standardized.path
    }

    /// The runbooks the tests run, in the order of `runbooks/README.md`.
    static let scenarios = [
        "restore-latest", "restore-pitr", "dropped-table", "side-restore", "wal-archiving", "drill-failed",
        "repository-damaged", "move-repository", "disaster-recovery", "rotate-master-key"
    ]

    /// One fenced block: its lines, and the runbook line number (1-based) of its first line.
    struct Block: Equatable {
        var firstLine: Int
        var lines: [String]
    }

    /// The blocks whose info string is exactly `sh tested`. Other fenced blocks are skipped whole.
    static func testedBlocks(_ text: String) -> [Block] {
        var blocks: [Block] = []
        var fence: String?
        var current: Block?
        for (i, line) in text.components(separatedBy: "\n").enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let f = fence {
                if trimmed.hasPrefix(f) && trimmed.allSatisfy({ $0 == "`" }) {
                    if let b = current { blocks.append(b) }
                    fence = nil
                    current = nil
                } else if current != nil {
                    current!.lines.append(line)
                }
            } else if trimmed.hasPrefix("```") {
                let ticks = String(trimmed.prefix { $0 == "`" })
                fence = ticks
                let info = trimmed.dropFirst(ticks.count).trimmingCharacters(in: .whitespaces)
                current = info == "sh tested" ? Block(firstLine: i + 2, lines: []) : nil
            }
        }
        return blocks
    }

    /// The runbook files `README.md` links to (`[…](name.md)`), in order.
    static func listedInReadme(_ readme: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: #"\]\(([A-Za-z0-9._-]+\.md)\)"#)
        var seen: [String] = []
        for m in regex.matches(in: readme, range: NSRange(readme.startIndex..., in: readme)) {
            let name = String(readme[Range(m.range(at: 1), in: readme)!])
            if !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    static func read(_ file: String) throws -> String {
        try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
    }

    /// One bash script of a runbook's tested blocks, and for each script line the runbook line it came from.
    static func script(_ name: String, blocks: [Block]) -> (text: String, runbookLine: [Int: Int]) {
        var lines = [
            "#!/bin/bash",
            "set -Eeuo pipefail",
            "trap 'echo \"RUNBOOK-FAILED at line $LINENO (exit $?): $BASH_COMMAND\" >&2' ERR",
            "cd \"$WORK\""
        ]
        var map: [Int: Int] = [:]
        for b in blocks {
            lines.append("# --- \(name).md line \(b.firstLine)")
            for (k, l) in b.lines.enumerated() {
                lines.append(l)
                map[lines.count] = b.firstLine + k
            }
        }
        return (lines.joined(separator: "\n") + "\n", map)
    }
}

/// Checks that need no services: every runbook the index lists exists and has commands the tests run.
@Suite struct RunbookIndexTests {
    @Test func everyListedRunbookExistsAndHasTestedBlocks() throws {
        let listed = Runbooks.listedInReadme(try Runbooks.read("README.md"))
        #expect(listed.contains("error-codes.md"))
        for scenario in Runbooks.scenarios {
            #expect(listed.contains(scenario + ".md"), "README.md lists \(scenario).md")
        }
        for file in listed where file != "error-codes.md" {
            let text = try Runbooks.read(file)
            #expect(!Runbooks.testedBlocks(text).isEmpty, "\(file) has a ```sh tested block")
            #expect(text.contains("## Before you start"), "\(file) starts with Before you start")
            #expect(Runbooks.scenarios.contains(String(file.dropLast(3))), "\(file) is run by RunbookTests")
        }
        // Every runbook in the folder is in the index, and every runbook link between them resolves.
        let files = try FileManager.default.contentsOfDirectory(atPath: Runbooks.directory).filter {
            $0.hasSuffix(".md")
        }
        for f in files where f != "README.md" { #expect(listed.contains(f), "README.md lists \(f)") }
        for f in files {
            for link in Runbooks.listedInReadme(try Runbooks.read(f)) {
                #expect(files.contains(link), "\(f) links to \(link), which exists")
            }
        }
    }

    /// Each scenario has its own test in ``RunbookTests`` (one `@Test` per runbook).
    @Test func everyScenarioHasItsTest() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        for scenario in Runbooks.scenarios {
            #expect(source.contains("try scenario(\"\(scenario)\""), "RunbookTests has a test for \(scenario).md")
        }
    }

    @Test func theParserTakesOnlyShTestedBlocks() {
        let text = """
            # T
            ```sh
            echo not run
            ```
            ```sh tested
            echo one
            echo two
            ```
            ````markdown
            ```sh tested
            echo inside another fence
            ```
            ````
            ```sh tested extra
            echo not run either
            ```
            ```sh tested
            echo three
            ```
            """
        #expect(
            Runbooks.testedBlocks(text) == [
                Runbooks.Block(firstLine: 6, lines: ["echo one", "echo two"]),
                Runbooks.Block(firstLine: 18, lines: ["echo three"])
            ])
    }
}

/// Runs each runbook's tested blocks as the postgres user against a scratch cluster archiving into the S3
/// emulator (TLS), after setting up the situation the runbook is for, then checks the outcome on the data.
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct RunbookTests {
    /// Rows of `app.orders` as one digest.
    static func digest(host: String, port: Int) throws -> String {
        try psql(
            host: host, port: port,
            "SELECT count(*) || ':' || md5(string_agg(id || '/' || customer || '/' || amount, ',' ORDER BY id)) FROM orders",
            database: "app")
    }

    static func psql(host: String, port: Int, _ sql: String, database: String = "postgres") throws -> String {
        let r = try Run.program(
            TestCluster.binDirectory + "/psql",
            [
                "-h", host, "-p", String(port), "-U", "postgres", "-d", database,
                "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql
            ])
        guard r.status == 0 else { throw TestFailure("psql on port \(port) failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A cluster with `cairn init`, database `app` with 1000 orders, a full backup, later WAL archived.
    static func prepare(_ name: String, major: PGMajor = .v15) throws -> ScratchCluster {
        let c = try ScratchCluster(name: "runbook-\(name)-\(major)", major: major) { dir, conninfo in
            try Run.shell(
                "mkdir -p \(dir)/drills \(dir)/work && chown postgres:postgres \(dir)/drills \(dir)/work && chmod 700 \(dir)/work"
            )
            return try TestRepository.config(
                .s3, dir: dir, conninfo: conninfo, major: major,
                extra: "drills:\n  backup: latest\n  target: end\n  scratch_directory: \(dir)/drills\n  timeout: 5m",
                masterKey: name == "rotate-master-key" ? Data(MasterKey.generate()).base64EncodedString() : nil)
        }
        do {
            try setUp(c)
        } catch {
            c.destroy()
            throw error
        }
        return c
    }

    static func setUp(_ c: ScratchCluster) throws {
        let initRun = try c.cairn(["init"])
        guard initRun.status == 0 else { throw TestFailure("cairn init: \(initRun.stderr)") }
        try c.psql("CREATE DATABASE app")
        try c.psql(
            "CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL DEFAULT now())",
            database: "app")
        try c.psql(
            "INSERT INTO orders (customer, amount) SELECT 'customer ' || (g % 97), (g * 7 % 1000) / 10.0 FROM generate_series(1, 1000) g",
            database: "app")
        let backup = try c.cairn(["backup"])
        guard backup.status == 0 else { throw TestFailure("cairn backup: \(backup.stderr)") }
        // WAL after the backup, so that every restore has to replay it.
        try c.psql("UPDATE orders SET amount = amount + 1 WHERE id % 10 = 0", database: "app")
        try c.switchAndWaitForArchive()
    }

    /// What every runbook gets (README.md documents these).
    static func baseEnvironment(_ c: ScratchCluster) -> [String: String] {
        let cairnDir = (Run.installedCairn as NSString).deletingLastPathComponent
        return [
            "PATH": "\(cairnDir):\(c.bin):/usr/local/bin:/usr/bin:/bin", "HOME": c.dir + "/work", "LANG": "C.UTF-8",
            "CAIRN_CONFIG": c.config!, "PGDATA": c.data, "PGHOST": c.socketDir, "PGPORT": String(c.port),
            "PGUSER": "postgres", "PGDATABASE": "postgres", "WORK": c.dir + "/work"
        ]
    }

    /// Writes the runbook's script into the cluster's folder and runs it as postgres; throws with the output and
    /// the failing runbook line when it fails.
    @discardableResult
    static func runRunbook(_ name: String, _ c: ScratchCluster, environment: [String: String]) throws -> ProcessResult {
        let blocks = Runbooks.testedBlocks(try Runbooks.read(name + ".md"))
        guard !blocks.isEmpty else { throw TestFailure("\(name).md has no ```sh tested block") }
        let (text, map) = Runbooks.script(name, blocks: blocks)
        let path = c.dir + "/runbook-\(name).sh"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres:postgres \(path) && chmod 644 \(path)")
        let env = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let started = Date()
        let r = try Run.program(
            "/usr/sbin/runuser",
            ["-u", "postgres", "--", "/usr/bin/env", "-i"] + env
                + ["/usr/bin/timeout", "-k", "10", "240", "/bin/bash", path])
        Measurements.record([
            "runbook \(name).md: script \(String(format: "%.1f", Date().timeIntervalSince(started))) s, exit \(r.status)"
        ])
        // The script and what it printed, kept for reading after the scratch cluster is gone.
        let keep = (TestEnvironment.env["CAIRN_TEST_STATE"] ?? NSTemporaryDirectory() + "cairn-tests") + "/runbooks"
        try? FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
        try? text.write(toFile: keep + "/\(name).sh", atomically: true, encoding: .utf8)
        try? (r.stdout + "\n--- stderr ---\n" + r.stderr).write(
            toFile: keep + "/\(name).log", atomically: true, encoding: .utf8)
        if r.status != 0 {
            var at = "(no line reported; exit \(r.status)\(r.status == 124 ? ": timed out" : ""))"
            if let m = r.stderr.range(of: #"RUNBOOK-FAILED at line ([0-9]+)[^\n]*"#, options: .regularExpression) {
                let report = String(r.stderr[m])
                let scriptLine = Int(report.split(separator: " ")[3]) ?? 0
                let rbLine = map[scriptLine] ?? map.filter { $0.key <= scriptLine }.max { $0.key < $1.key }?.value
                at = "\(name).md line \(rbLine.map(String.init) ?? "?"): \(report)"
            }
            throw TestFailure(
                """
                runbook \(name).md failed at \(at)
                --- stdout (tail) ---
                \(r.stdout.suffix(6000))
                --- stderr (tail) ---
                \(r.stderr.suffix(6000))
                """)
        }
        return r
    }

    /// Stops any server a runbook left running under `WORK` (side clusters, the new host's cluster).
    static func stopServers(under dir: String) {
        let pids = (try? Run.shell("find \(dir) -maxdepth 3 -name postmaster.pid", check: false).stdout) ?? ""
        for pidFile in pids.split(separator: "\n") {
            let data = (pidFile as NSString).deletingLastPathComponent
            _ = try? Run.shell(
                "runuser -u postgres -- \(TestCluster.binDirectory)/pg_ctl -D \(data) -m immediate -w stop >/dev/null 2>&1",
                check: false)
        }
    }

    static func serverTime(_ c: ScratchCluster) throws -> String {
        try c.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    }

    static func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    static func backupIds(_ c: ScratchCluster, config: String? = nil) throws -> [String] {
        let r = try Run.cairnAsPostgres(["--config", config ?? c.config!, "list", "--json"])
        guard r.status == 0 else { throw TestFailure("cairn list: \(r.stderr)") }
        return ((try json(r.stdout) as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }.sorted()
    }

    static func prefix(of config: String) throws -> String {
        let text = try String(contentsOfFile: config, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.contains("prefix:") }) else {
            throw TestFailure("no prefix in \(config)")
        }
        return line.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
    }

    static func repository(prefix: String) -> S3Repository {
        S3Repository(settings: TestEnvironment.s3Settings(prefix: prefix, tls: false))
    }

    /// Flips a byte in the middle of the first data bundle of a backup.
    static func damageFirstBundle(of backup: String, in repo: S3Repository) throws -> String {
        let keys = try repo.list(prefix: "backups/\(backup)/base/").map(\.key).filter { $0.hasSuffix(".tar.zst") }
            .sorted()
        guard let victim = keys.first else { throw TestFailure("backup \(backup) has no bundle") }
        var bytes = try repo.getBytes(victim)
        bytes[bytes.count / 3] ^= 0x40
        _ = try repo.put(victim, bytes)
        return victim
    }

    /// One runbook's scenario: its cluster (see ``prepare``), the folder its scripts run in, and the digest of
    /// `app.orders` before anything happened.
    struct Scenario {
        let name: String
        let c: ScratchCluster
        var work: String { c.dir + "/work" }
        let before: String

        /// Runs the runbook's tested blocks with `env`.
        @discardableResult
        func run(_ env: [String: String]) throws -> ProcessResult {
            try RunbookTests.runRunbook(name, c, environment: env)
        }
    }

    /// Prepares runbook `name`'s cluster, runs `body` with the scenario and the base environment, then stops any
    /// server the runbook left running and removes the cluster.
    func scenario(
        _ name: String, major: PGMajor = .v15, _ body: (Scenario, inout [String: String]) throws -> Void
    ) throws {
        try #require(Runbooks.scenarios.contains(name), "\(name) is one of Runbooks.scenarios")
        let began = Date()
        let c = try Self.prepare(name, major: major)
        defer {
            Self.stopServers(under: c.dir + "/work")
            c.destroy()
        }
        var env = Self.baseEnvironment(c)
        let s = Scenario(name: name, c: c, before: try Self.digest(host: c.socketDir, port: c.port))
        #expect(s.before.hasPrefix("1000:"))
        try body(s, &env)
        Measurements.record([
            "runbook \(name).md (\(major)): test \(String(format: "%.1f", Date().timeIntervalSince(began))) s"
        ])
    }

    @Test func restoreLatest() throws {
        try scenario("restore-latest") { s, env in
            let c = s.c
            let before = s.before
            c.stop()
            try Run.shell("find \(c.data) -mindepth 1 -delete")
            try s.run(env)
            #expect(try Self.digest(host: c.socketDir, port: c.port) == before)
            #expect(try c.psql("SELECT pg_is_in_recovery()") == "f")
            #expect(try c.psql("SELECT timeline_id FROM pg_control_checkpoint()") == "2")
            #expect(try Self.backupIds(c).count == 2, "the runbook took a fresh backup")
        }
    }

    @Test(arguments: PGMajor.tested)
    func restorePointInTime(major: PGMajor) throws {
        try scenario("restore-pitr", major: major) { s, env in
            let c = s.c
            let before = s.before
            usleep(1_000_000)
            env["TARGET"] = try Self.serverTime(c)
            usleep(1_000_000)
            try c.psql("UPDATE orders SET amount = 0", database: "app")
            try c.switchAndWaitForArchive()
            #expect(try Self.digest(host: c.socketDir, port: c.port) != before)
            try s.run(env)
            #expect(try Self.digest(host: c.socketDir, port: c.port) == before, "the cluster is back at TARGET")
            #expect(try c.psql("SELECT pg_is_in_recovery()") == "f")
            let autoConf = try String(contentsOfFile: c.data + "/postgresql.auto.conf", encoding: .utf8)
            #expect(!autoConf.contains("recovery_target_time ="), "the target was removed from the settings")
            #expect(try Self.backupIds(c).count == 2)
        }
    }

    @Test(arguments: PGMajor.tested)
    func droppedTable(major: PGMajor) throws {
        try scenario("dropped-table", major: major) { s, env in
            let c = s.c
            let work = s.work
            let before = s.before
            // The runbook is given no time: cairn find finds the DROP in the archived WAL.
            try c.psql("DROP TABLE orders", database: "app")
            try c.psql("CREATE TABLE later (id int)", database: "app")  // a write after the mistake that must stay
            env["DB"] = "app"
            env["TABLE"] = "orders"
            let r = try s.run(env)
            #expect(r.stdout.contains("dropped public.orders"), "\(r.stdout)")
            #expect(try Self.digest(host: c.socketDir, port: c.port) == before, "orders is back with its 1000 rows")
            #expect(
                try c.psql("SELECT to_regclass('later') IS NOT NULL", database: "app") == "t",
                "production kept its later writes")
            #expect(
                try c.psql("SELECT nextval('orders_id_seq')", database: "app") == "1001", "the sequence came back too")
            let left = try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.hasSuffix("T") }
            #expect(left.isEmpty, "the scratch cluster is removed: \(left)")
        }
    }

    @Test func sideRestore() throws {
        try scenario("side-restore") { s, env in
            let c = s.c
            let work = s.work
            let before = s.before
            // A copy promoted while production was down archived timeline 2: nothing could tell what it is.
            c.stop()
            let copyDir = c.dir + "/stray"
            try Run.shell("mkdir -p \(copyDir) && chown postgres:postgres \(copyDir)")
            #expect(
                try c.cairn(["restore", "--target-dir", copyDir + "/data", "--archive-mode", "preserve"]).status == 0)
            let copy = try ScratchCluster(restoredAt: copyDir + "/data", dir: copyDir, config: c.config)
            try copy.start()
            try copy.waitUntilPromoted()
            try copy.switchAndWaitForArchive()
            copy.destroy()
            try c.start()
            #expect(try c.cairn(["restore", "--latest", "--dry-run"]).status == ErrorCode.repoAmbiguousHistory.exitCode)
            env["TL"] = "2"
            env["REASON"] = "a copy restored for a test"
            let r = try s.run(env)
            #expect(r.stdout.contains("undecided"))
            #expect(try c.cairn(["timeline", "--json"]).stdout.contains("\"copy\""))
            #expect(
                try String(contentsOfFile: work + "/copy/postgresql.auto.conf", encoding: .utf8).contains(
                    "archive_mode = 'off'"))
            #expect(try Self.digest(host: c.socketDir, port: c.port) == before)
        }
    }

    @Test func walArchiving() throws {
        try scenario("wal-archiving") { s, env in
            let c = s.c
            // Archiving breaks: archive_command names a configuration file that was moved away.
            try c.psql(
                "ALTER SYSTEM SET archive_command = '\(Run.installedCairn) --config \(c.dir)/moved-away.yaml wal-push %p'"
            )
            try c.psql("SELECT pg_reload_conf()")
            var seg = ""
            for _ in 0..<2 {
                try c.psql(
                    "INSERT INTO orders (customer, amount) SELECT 'late', 1 FROM generate_series(1, 10)",
                    database: "app")
                seg = try c.psql("SELECT pg_walfile_name(pg_switch_wal())")
            }
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, (try c.psql("SELECT failed_count FROM pg_stat_archiver")) == "0" {
                usleep(200_000)
            }
            #expect(
                try c.psql("SELECT failed_count > 0 FROM pg_stat_archiver") == "t",
                "archiving is failing before the runbook")
            let ready: () throws -> String = {
                try Run.shell("find \(c.data)/pg_wal/archive_status -name '*.ready' | wc -l").stdout.trimmingCharacters(
                    in: .whitespacesAndNewlines)
            }
            #expect(try ready() != "0")
            let r = try s.run(env)
            #expect(r.stdout.contains("archive_command FAILED"), "step 2 shows the failure")
            #expect(r.stderr.contains("[config.missing]"), "step 2 shows cairn's error code")
            #expect(try ready() == "0")
            #expect(try c.psql("SHOW archive_command") == "\(Run.installedCairn) --config \(c.config!) wal-push %p")
            let info = try c.cairn(["info", "--json"])
            let timelines = (try Self.json(info.stdout) as? [String: Any])?["timelines"] as? [[String: Any]] ?? []
            let last = timelines.compactMap { $0["last_segment"] as? String }.max() ?? ""
            #expect(last >= seg, "the repository has \(seg) (newest: \(last))")
            #expect(timelines.allSatisfy { ($0["gaps"] as? [Any])?.isEmpty ?? true })
        }
    }

    @Test func drillFailed() throws {
        try scenario("drill-failed") { s, env in
            let c = s.c
            let second = try c.cairn(["backup", "--json"])
            let b2 = try #require(
                (try Self.json(second.stdout) as? [String: Any])?["id"] as? String, "\(second.stderr)")
            let b1 = try #require(try Self.backupIds(c).first)
            let repo = Self.repository(prefix: try Self.prefix(of: c.config!))
            _ = try Self.damageFirstBundle(of: b2, in: repo)
            let r = try s.run(env)
            #expect(r.stdout.contains("FAIL restore"), "step 1 names the failing check")
            let ids = try Self.backupIds(c)
            #expect(ids.count == 3, "a fresh backup was taken")
            let b3 = try #require(ids.last)
            let drills = try DrillRecord.loadAll(from: repo)
            #expect(drills.contains { $0.backupId == b2 && $0.verdict == .fail })
            #expect(drills.contains { $0.backupId == b1 && $0.verdict == .pass }, "the other backup was drilled")
            #expect(drills.contains { $0.backupId == b3 && $0.verdict == .pass }, "the fresh backup was drilled")
        }
    }

    @Test func repositoryDamaged() throws {
        try scenario("repository-damaged") { s, env in
            let c = s.c
            let b1 = try #require(try Self.backupIds(c).first)
            let repo = Self.repository(prefix: try Self.prefix(of: c.config!))
            let victim = try Self.damageFirstBundle(of: b1, in: repo)
            let r = try s.run(env)
            #expect(r.stdout.contains("ERROR damaged-object \(victim)"), "step 1 names the damaged object")
            let ids = try Self.backupIds(c)
            #expect(ids.count == 2)
            let b2 = try #require(ids.last)
            #expect(try repo.head("backups/\(b2)/pin.json") != nil, "the new backup is pinned")
            #expect(try DrillRecord.loadAll(from: repo).contains { $0.backupId == b2 && $0.verdict == .pass })
            #expect(try repo.head(victim) != nil, "nothing was deleted by hand")
        }
    }

    @Test func moveRepository() throws {
        try scenario("move-repository") { s, env in
            let c = s.c
            let oldPrefix = try Self.prefix(of: c.config!)
            let newPrefix = TestEnvironment.uniqueName("moved")
            let newConfig = c.dir + "/cairn-new.yaml"
            try String(contentsOfFile: c.config!, encoding: .utf8)
                .replacingOccurrences(of: "prefix: \(oldPrefix)", with: "prefix: \(newPrefix)")
                .write(toFile: newConfig, atomically: true, encoding: .utf8)
            try Run.shell("chown postgres:postgres \(newConfig)")
            let bucket = TestEnvironment.value("CAIRN_TEST_S3_BUCKET")
            env["NEW_CONFIG"] = newConfig
            env["OLD_REPO_URL"] = "s3://\(bucket)/\(oldPrefix)"
            env["NEW_REPO_URL"] = "s3://\(bucket)/\(newPrefix)"
            env["AWS_SHARED_CREDENTIALS_FILE"] = c.dir + "/aws-credentials"
            env["AWS_DEFAULT_REGION"] = TestEnvironment.value("CAIRN_TEST_S3_REGION")
            env["AWS_ENDPOINT_URL"] = TestEnvironment.value("CAIRN_TEST_S3_TLS_ENDPOINT")
            env["AWS_CA_BUNDLE"] = TestEnvironment.value("CAIRN_TEST_S3_CA")
            try s.run(env)
            let verify = try Run.cairnAsPostgres(["--config", newConfig, "verify", "--full"])
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
            #expect(
                try Self.backupIds(c, config: newConfig).count == 2, "the old backup was copied and a new one taken")
            #expect(try Self.backupIds(c).count == 1, "nothing new went to the old location")
            // WAL now goes to the new location only.
            try c.psql("INSERT INTO orders (customer, amount) VALUES ('after the move', 1)", database: "app")
            let seg = try c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
            try c.switchAndWaitForArchive()
            let key = "wal/\(seg.prefix(8))/\(seg).zst"
            #expect(try Self.repository(prefix: newPrefix).head(key) != nil, "\(seg) was archived to the new prefix")
            #expect(
                try Self.repository(prefix: oldPrefix).head(key) == nil, "\(seg) was not archived to the old prefix")
        }
    }

    @Test func disasterRecovery() throws {
        try scenario("disaster-recovery") { s, env in
            let c = s.c
            let work = s.work
            let before = s.before
            c.stop()  // the old host is gone
            let port = LocalPort.free()
            let newConfig = c.dir + "/cairn-newhost.yaml"
            try String(contentsOfFile: c.config!, encoding: .utf8)
                .replacingOccurrences(of: "host=\(c.socketDir) port=\(c.port)", with: "host=\(work) port=\(port)")
                .write(toFile: newConfig, atomically: true, encoding: .utf8)
            try Run.shell("chown postgres:postgres \(newConfig)")
            env["CAIRN_CONFIG"] = newConfig
            env["PGDATA"] = work + "/pgdata"
            env["PGHOST"] = work
            env["PGPORT"] = String(port)
            try s.run(env)
            #expect(try Self.digest(host: work, port: port) == before)
            #expect(try Self.psql(host: work, port: port, "SELECT pg_is_in_recovery()") == "f")
            #expect(try Self.psql(host: work, port: port, "SHOW archive_mode") == "on")
            #expect(try Self.psql(host: work, port: port, "SHOW archive_command").contains(newConfig))
            #expect(try Self.backupIds(c).count == 2)
            let info = try Run.cairnAsPostgres(["--config", newConfig, "info", "--json"])
            let timelines = (try Self.json(info.stdout) as? [String: Any])?["timelines"] as? [[String: Any]] ?? []
            #expect(
                timelines.contains {
                    ($0["timeline"] as? Int) == 2 && (($0["segments"] as? Int) ?? 0) > 0 && ($0["parent"] as? Int) == 1
                },
                "the new host archives timeline 2, with its history: \(info.stdout)")
        }
    }

    @Test func rotateMasterKey() throws {
        try scenario("rotate-master-key") { s, env in
            let c = s.c
            let work = s.work
            let before = s.before
            let oldKey = c.dir + "/master.key"
            let oldConfig = c.dir + "/cairn-old-key.yaml"
            try FileManager.default.copyItem(atPath: c.config!, toPath: oldConfig)
            try Run.shell("chown postgres:postgres \(oldConfig)")
            let oldKeyText = try String(contentsOfFile: oldKey, encoding: .utf8)
            env["NEW_KEY"] = work + "/master-new.key"
            let r = try s.run(env)
            #expect(r.stdout.contains("the configured master key opens the keyring"))
            #expect(!FileManager.default.fileExists(atPath: oldKey), "the old key file was destroyed")
            #expect(try String(contentsOfFile: c.config!, encoding: .utf8).contains("key_file: \(work)/master-new.key"))
            #expect(try Self.backupIds(c).count == 2, "a backup under the new key")
            #expect(try Run.cairnAsPostgres(["--config", c.config!, "verify", "--full"]).status == 0)
            // The old key (restored from a copy someone kept) no longer opens the repository.
            try oldKeyText.write(toFile: oldKey, atomically: true, encoding: .utf8)
            try Run.shell("chown postgres \(oldKey) && chmod 600 \(oldKey)")
            let stale = try Run.cairnAsPostgres(["--config", oldConfig, "list"])
            #expect(stale.status == 77 && stale.stderr.contains("[key.mismatch]"), "\(stale.stderr)")
            #expect(
                !(r.stdout + r.stderr).contains(oldKeyText.trimmingCharacters(in: .whitespacesAndNewlines)),
                "no key is printed")
            let restored = try c.restoreAndStart()
            defer { restored.destroy() }
            #expect(try Self.digest(host: restored.socketDir, port: restored.port) == before)
        }
    }
}
