import CairnBase
import Foundation
import TestSupport
import Testing

extension CrashCampaignTests {
    /// The S3 endpoint killed (`kill -9`, see ``CrashableEndpoint`` for why the endpoint and not moto) in the middle
    /// of a `backup`, of the archiver's `wal-push` or of an `expire`, and started again after a random outage.
    /// Each command must succeed (it retried across the outage) or fail with one documented error and commit
    /// nothing, never hang; then the invariants hold and the next run succeeds.
    /// On moto and on SeaweedFS.
    @Test(arguments: S3Server.tested)
    func s3EndpointCrash(server: S3Server) throws {
        var (rng, seed) = Campaign.generator(server == .moto ? "s3-endpoint" : "s3-endpoint-\(server)")
        let endpoint = try CrashableEndpoint(server: server)
        let prefix = TestEnvironment.uniqueName("crash-endpoint")
        var direct = ""
        let c = try ScratchCluster(name: "crash-endpoint-\(server)") { dir, conninfo in
            let retention = "retention:\n  recovery_window: 1s\n  min_full_backups: 1\n  orphan_safety_age: 1m"
            direct = try CampaignConfig.s3(
                dir: dir, name: "direct.yaml", conninfo: conninfo,
                endpoint: server.endpoint, prefix: prefix, extra: retention, server: server)
            return try CampaignConfig.s3(
                dir: dir, conninfo: conninfo, endpoint: endpoint.endpoint, prefix: prefix,
                limits: ["request_timeout: 60s", "retries: 8", "io_timeout: 5s", "connect_timeout: 2s"],
                extra: retention, server: server)
        }
        defer { c.destroy() }
        let inv = try Invariants(c, config: direct)
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 2)
        let (first, baseline) = try Campaign.timed { try c.cairn(["backup"]) }
        try #require(first.status == 0, "\(first.stderr)")
        var tallies = [
            "backup": Tally(name: "S3 endpoint (\(server)) crash during backup", seed: seed),
            "wal-push": Tally(name: "S3 endpoint (\(server)) crash during wal-push (archive_command)", seed: seed),
            "expire": Tally(name: "S3 endpoint (\(server)) crash during expire", seed: seed)
        ]
        for trial in 0..<Campaign.trials {
            let op = ["backup", "wal-push", "expire"][trial % 3]
            let ctx = "s3-endpoint/\(op) seed \(seed) trial \(trial)"
            try Workload.touch(c, trial)
            let outage = Double.random(in: 0.2...3.0, using: &rng)
            if op == "wal-push" {
                try c.psql("SELECT pg_switch_wal()")
                let deadline = Date().addingTimeInterval(30)
                while Processes.find([c.config!, "wal-push"]).isEmpty && Date() < deadline { usleep(1_000) }
                usleep(UInt32(Double.random(in: 0...0.4, using: &rng) * 1e6))
                let inFlight = !Processes.find([c.config!, "wal-push"]).isEmpty
                endpoint.crash()
                usleep(UInt32(outage * 1e6))
                try endpoint.start()
                tallies[op]!.add(inFlight ? 128 + SIGKILL : 0)
                // The archiver's retries are the next run: it catches up once the endpoint is back.
                try c.switchAndWaitForArchive(timeout: 240)
                try inv.check(ctx + " after the archiver caught up", walFloor: true)
                continue
            }
            if op == "expire" {
                #expect(try c.cairn(["backup"]).status == 0)
                usleep(1_100_000)
            }
            let before = try inv.check(ctx + " before", walFloor: true)
            let p = try CairnProcess.start(config: c.config!, [op], quiet: true)
            let delay = Campaign.killDelay(trial: trial, baseline: op == "expire" ? 1.5 : baseline, using: &rng)
            let early = p.wait(atMost: delay)
            endpoint.crash()
            usleep(UInt32(outage * 1e6))
            try endpoint.start()
            let status = early ?? p.waitOrKillHung(atMost: 240)
            guard let status else {
                Issue.record(
                    "\(ctx): \(op) still ran 240 s after the endpoint came back: a hang; stacks:\n\(p.backtrace)")
                continue
            }
            tallies[op]!.add(early == nil ? 128 + SIGKILL : 0)
            if status != 0 { ErrorReport.check(status: status, stderr: p.stderr, ctx) }
            let after = try inv.check(ctx + " after the crash", walFloor: true)
            if op == "backup" {
                #expect(
                    after.count == before.count + (status == 0 ? 1 : 0), "\(ctx): only a successful backup is committed"
                )
            }
            let next = try c.cairn([op])
            #expect(next.status == 0, "\(ctx): the next \(op): \(next.stderr)")
            try inv.check(ctx + " after the next run", walFloor: true)
        }
        try Workload.restoreAndCompare(c, "s3-endpoint seed \(seed)")
        for t in tallies.values where t.total > 0 { t.record() }
        Measurements.record([
            "crash campaign S3 endpoint (\(server)): \(endpoint.crashes) kill -9 of the endpoint, seed \(seed)"
        ])
    }
}

/// What a failed command must show: exactly one error line naming a code from runbooks/error-codes.md (plus an
/// optional HINT), and the exit code that table gives for it.
enum ErrorReport {
    static let documented: [String: Int32] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../runbooks/error-codes.md").standardized.path
        var table: [String: Int32] = [:]
        for line in ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
        where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.count >= 2, let exit = Int32(cells[1]) {
                table[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = exit
            }
        }
        return table
    }()

    /// Checks a failure's stderr (the command ran with --quiet) and exit status; returns the code.
    @discardableResult
    static func check(status: Int32, stderr: String, _ ctx: String) -> String? {
        let lines = stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        let errors = lines.filter { $0.hasPrefix("cairn: error: ") }
        #expect(!documented.isEmpty, "runbooks/error-codes.md was not found (a path relative to this file is wrong)")
        #expect(
            errors.count == 1 && lines.allSatisfy { $0.hasPrefix("cairn: error: ") || $0.hasPrefix("HINT: ") },
            "\(ctx): a failure is one error line (and a hint), got exit \(status): \(stderr)")
        guard let line = errors.first, line.hasSuffix("]"), let open = line.lastIndex(of: "[") else {
            Issue.record("\(ctx): the error names no code: \(stderr)")
            return nil
        }
        let code = String(line[line.index(after: open)..<line.index(before: line.endIndex)])
        #expect(documented[code] != nil, "\(ctx): [\(code)] is not in runbooks/error-codes.md")
        #expect(
            documented[code] == status,
            "\(ctx): [\(code)] exited \(status), the runbook says \(documented[code].map(String.init) ?? "?")")
        return code
    }
}
