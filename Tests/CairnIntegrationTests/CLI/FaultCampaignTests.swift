import CairnBase
import Foundation
import TestSupport
import Testing

/// The fault campaign of issue #11: whole commands (`backup`, `wal-push`, `restore`) against S3 through
/// `scripts/fault_proxy.py` with randomly scripted faults (seeded, printed). Each run must either succeed with its
/// data verifiably intact, or fail with one documented error and nothing partial committed, within a bound
/// derived from the configured deadlines (a watchdog turns a hang into a failure). Faults injected per kind
/// (from the proxy's log) go to `Measurements`. `CAIRN_CRASH_TRIALS` runs of each command (default 2).
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct FaultCampaignTests {
    /// The deadlines of the configuration under faults (stall_seconds below are chosen around io_timeout).
    static let ioTimeout = 3.0, requestTimeout = 20.0
    static let limits = ["io_timeout: 3s", "request_timeout: 20s", "connect_timeout: 2s", "retries: 5"]

    /// A random rule: (kind for the counts, JSON). Faults hit any request of the command, after `skip` clean ones.
    static func randomRule(using rng: inout SeededGenerator) -> String {
        let n = Int.random(in: 0...150_000, using: &rng)
        let actions = [
            #"{"status": 503, "code": "SlowDown"}"#, #"{"status": 500}"#,
            #"{"reset_after_bytes": \#(n)}"#, #"{"truncate_after_bytes": \#(n)}"#,
            #"{"stall_seconds": 1}"#,  // shorter than io_timeout
            #"{"stall_after_bytes": \#(n), "stall_seconds": 30}"#,  // longer: abandoned, retried
            #"{"delay_seconds": \#(String(format: "%.1f", Double.random(in: 0.2...2.0, using: &rng)))}"#,
            #"{"drop_request": true}"#, #"{"forward_then_status": 500}"#
        ]
        let action = actions.randomElement(using: &rng)!
        let method = ["", "GET", "PUT", "HEAD", "POST"].randomElement(using: &rng)!
        // One rule in twelve never stops (a store that stays broken): the command must give up within its deadline.
        let times = Int.random(in: 0..<12, using: &rng) == 0 ? -1 : Int.random(in: 1...3, using: &rng)
        return
            #"{"match": {"method": "\#(method)"}, "skip": \#(Int.random(in: 0...4, using: &rng)), "times": \#(times), "action": \#(action)}"#
    }

    /// The kind of fault a logged request got (nil: passed untouched).
    static func kind(_ action: [String: Any]) -> String {
        if let s = action["status"] as? Int { return s == 503 ? "503 SlowDown" : "\(s)" }
        if action["reset_after_bytes"] != nil { return "reset mid-body" }
        if action["truncate_after_bytes"] != nil { return "truncated body" }
        if action["stall_after_bytes"] != nil { return "stall longer than io_timeout" }
        if action["stall_seconds"] != nil { return "stall shorter than io_timeout" }
        if action["drop_request"] != nil { return "dropped request" }
        if action["forward_then_status"] != nil { return "lost acknowledgement (stored, then 500)" }
        return "delay"
    }

    /// On each test S3 server: moto, and SeaweedFS (a real S3 implementation, whose answers to the faults'
    /// retries, e.g. a create-only write repeated after a lost acknowledgement, are its own).
    @Test(arguments: S3Server.tested)
    func commandsUnderScriptedFaults(server: S3Server) throws {
        var (rng, seed) = Campaign.generator(server == .moto ? "fault" : "fault-\(server)")
        let proxy = try FaultProxy(server: server)
        let prefix = TestEnvironment.uniqueName("fault"), walPrefix = prefix + "-wal"
        var faulty = "", faultyWal = "", directWal = ""
        let s3 = server.endpoint
        // The archiver keeps a copy of each segment (to push by hand) and archives directly, without faults.
        let c = try ScratchCluster(
            name: "fault",
            settings: [
                "archive_command = 'cp %p ../staging/%f && \(Run.installedCairn) --config ../direct.yaml wal-push %p'"
            ]
        ) { dir, conninfo in
            try Run.shell("mkdir -p \(dir)/staging \(dir)/work && chown postgres:postgres \(dir)/staging \(dir)/work")
            faulty = try CampaignConfig.s3(
                dir: dir, name: "faulty.yaml", conninfo: conninfo, endpoint: proxy.endpoint.absoluteString,
                prefix: prefix, limits: Self.limits, server: server)
            faultyWal = try CampaignConfig.s3(
                dir: dir, name: "faulty-wal.yaml", conninfo: conninfo,
                endpoint: proxy.endpoint.absoluteString, prefix: walPrefix, limits: Self.limits, server: server)
            directWal = try CampaignConfig.s3(
                dir: dir, name: "direct-wal.yaml", conninfo: conninfo, endpoint: s3, prefix: walPrefix,
                server: server)
            return try CampaignConfig.s3(
                dir: dir, name: "direct.yaml", conninfo: conninfo, endpoint: s3, prefix: prefix, server: server)
        }
        defer { c.destroy() }
        let inv = try Invariants(c)
        #expect(try c.cairn(["init"]).status == 0)
        #expect(try Run.cairnAsPostgres(["--config", directWal, "init"]).status == 0)
        try Workload.initialize(c, scale: 2)
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        let target = c.dir + "/target/data"
        try Run.shell("mkdir -p \(c.dir)/target && chown postgres:postgres \(c.dir)/target")

        var faults: [String: Int] = [:], outcomes: [String: (ok: Int, failed: Int)] = [:], codes: [String: Int] = [:]
        var baselines: [String: Double] = [:], worst = 0.0
        for trial in 0..<(3 * Campaign.trials + 3) {
            let op = ["backup", "wal-push", "restore"][trial % 3]
            let clean = trial < 3  // the first run of each command measures its time without faults
            let ctx = "fault/\(op) seed \(seed) trial \(trial)"
            try proxy.reset()
            var rules: [String] = []
            if !clean { for _ in 0..<Int.random(in: 2...4, using: &rng) { rules.append(Self.randomRule(using: &rng)) } }
            try proxy.script("[" + rules.joined(separator: ",") + "]")

            var segment = "", args: [String], config = faulty
            switch op {
            case "backup": args = ["backup"]
            case "wal-push":
                try Workload.touch(c, trial)
                try c.switchAndWaitForArchive()
                segment = String(try c.psql("SELECT last_archived_wal FROM pg_stat_archiver").prefix(24))
                args = ["wal-push", "\(c.dir)/staging/\(segment)"]
                config = faultyWal
            default: args = ["restore", "--target-dir", target, "--archive-mode", "off", "--force"]
            }
            let before = try inv.check(ctx + " before")
            let p = try CairnProcess.start(config: config, args, quiet: true)
            let status = p.waitOrKillHung(atMost: 300)
            let elapsed = Date().timeIntervalSince(p.started)
            let injected = try proxy.log().compactMap { $0["action"] as? [String: Any] }
            for a in injected { faults[Self.kind(a), default: 0] += 1 }
            try proxy.reset()  // what follows (checks, next runs, the restored server's wal-fetch) runs clean
            guard let status else {
                Issue.record("\(ctx): \(op) hung (killed after 300 s) under \(rules); stacks:\n\(p.backtrace)")
                continue
            }
            if clean { baselines[op] = elapsed }
            // Each faulted request costs at most an io_timeout (or its delay) plus a backoff; a fault that never
            // stops costs the request deadline. Twice that, plus slack, is the bound.
            let bound =
                2 * (baselines[op] ?? 10) + Self.requestTimeout + Double(injected.count) * (Self.ioTimeout + 2) + 15
            worst = max(worst, elapsed / bound)
            #expect(elapsed < bound, "\(ctx): took \(Int(elapsed)) s, more than \(Int(bound)) s, under \(rules)")
            outcomes[op, default: (0, 0)].ok += status == 0 ? 1 : 0
            outcomes[op, default: (0, 0)].failed += status == 0 ? 0 : 1
            if status != 0, let code = ErrorReport.check(status: status, stderr: p.stderr, ctx) {
                codes[code, default: 0] += 1
            }
            if clean { #expect(status == 0, "\(ctx): without faults: \(p.stderr)") }

            switch op {
            case "backup":
                let after = try inv.check(ctx + " after")
                #expect(
                    after.count == before.count + (status == 0 ? 1 : 0),
                    "\(ctx): committed \(after) (before \(before)), exit \(status)")
            case "wal-push":
                // Stored or absent, never partial; the retry succeeds and what is stored is the segment.
                let out = "\(c.dir)/work/\(segment)"
                try? FileManager.default.removeItem(atPath: out)
                let f = try Run.cairnAsPostgres(["--config", directWal, "wal-fetch", segment, out])
                #expect(
                    f.status == (status == 0 ? 0 : f.status) && (f.status == 0 || f.status == 1),
                    "\(ctx): fetch after push (\(status)): \(f.stderr)")
                if status != 0 {
                    #expect(
                        try Run.cairnAsPostgres(["--config", directWal, "wal-push", "\(c.dir)/staging/\(segment)"])
                            .status == 0)
                }
                try? FileManager.default.removeItem(atPath: out)
                #expect(try Run.cairnAsPostgres(["--config", directWal, "wal-fetch", segment, out]).status == 0)
                #expect(
                    FileManager.default.contents(atPath: out)
                        == FileManager.default.contents(atPath: "\(c.dir)/staging/\(segment)"),
                    "\(ctx): the stored segment differs from the original")
            default:
                if status == 0 {
                    let r = try ScratchCluster(restoredAt: target, dir: c.dir + "/target", config: faulty)
                    try r.start()
                    defer { r.stop(mode: "immediate") }
                    try r.waitUntilPromoted()
                    #expect(try Workload.digest(r) == Workload.digest(c), "\(ctx): the restored data differ")
                }
                #expect(try inv.check(ctx + " after") == before, "\(ctx): a restore changes no backup")
            }
        }
        let lines = [
            "fault campaign on \(server) (seed \(seed)): "
                + outcomes.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value.ok) succeeded / \($0.value.failed) failed" }.joined(separator: ", "),
            "fault campaign failures by code: "
                + codes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "fault campaign faults injected: "
                + faults.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "),
            "fault campaign: slowest run used \(Int(worst * 100)) % of its time bound; baselines \(baselines.mapValues { Int($0 * 10) / 10 })"
        ]
        lines.forEach { print($0) }
        Measurements.record(lines)
        #expect(faults.values.reduce(0, +) > 0 || Campaign.trials == 0, "faults were injected")
    }
}
