import CairnBase
import Foundation
import TestSupport
import Testing

/// The crash campaign of issue #11: `kill -9` of `backup`, `wal-push`, `expire`, `restore` and of the S3 endpoint
/// at random points (seeded; the seed is printed), then the invariants of ``Invariants`` and a successful next run.
/// Each test ends by restoring the latest backup and comparing the data. `CAIRN_CRASH_TRIALS` trials per operation
/// (default 3 for CI; `scripts/crash-campaign.sh` runs the full campaign). Counts go to `Measurements`.
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct CrashCampaignTests {
    /// `cairn backup` killed while it streams, uploads, waits for WAL or commits.
    @Test(arguments: RepoKind.withSeaweed)
    func backup(repo kind: RepoKind) throws {
        var (rng, seed) = Campaign.generator("backup-\(kind)")
        let c = try ScratchCluster(name: "crash-backup-\(kind)") {
            try TestRepository.config(kind, dir: $0, conninfo: $1, limits: ["bundle_size: 1MiB"])
        }
        defer { c.destroy() }
        let inv = try Invariants(c)
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 3)
        let (first, baseline) = try Campaign.timed { try c.cairn(["backup"]) }
        try #require(first.status == 0, "\(first.stderr)")
        var tally = Tally(name: "backup (\(kind))", seed: seed)
        for trial in 0..<Campaign.trials {
            let ctx = "backup/\(kind) seed \(seed) trial \(trial)"
            try Workload.touch(c, trial)
            let before = try inv.check(ctx + " before")
            let p = try CairnProcess.start(config: c.config!, ["backup"])
            let status = p.kill9(after: Campaign.killDelay(trial: trial, baseline: baseline, using: &rng))
            tally.add(status)
            #expect(status == 0 || status == 128 + SIGKILL, "\(ctx): \(p.stderr)")
            let after = try inv.check(ctx + " after the kill")
            // A kill after the manifest reached the store (while releasing the lock or recording the job) leaves a
            // committed backup, which the checks above found complete; a backup that finished must be committed.
            #expect(
                status == 0 ? after.count == before.count + 1 : after.count <= before.count + 1,
                "\(ctx): committed \(after) before \(before), exit \(status)")
            let next = try c.cairn(["backup"])
            #expect(next.status == 0, "\(ctx): the next backup: \(next.stderr)")
            try inv.check(ctx + " after the next run")
        }
        try Workload.restoreAndCompare(c, "backup/\(kind) seed \(seed)")
        tally.record()
    }

    /// `cairn wal-push` as PostgreSQL's archive_command, killed while it reads, compresses, uploads or confirms;
    /// the archiver's retries are the next runs.
    @Test func walPush() throws {
        var (rng, seed) = Campaign.generator("wal-push")
        let c = try ScratchCluster(name: "crash-walpush") { try TestRepository.config(.s3, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        let inv = try Invariants(c)
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 1)
        #expect(try c.cairn(["backup"]).status == 0)
        // How long one push lives: watch the archiver's next one from start to end.
        var lifetime = 0.3
        try c.psql("INSERT INTO campaign (trial) VALUES (-1)")
        try c.psql("SELECT pg_switch_wal()")
        if let pid = waitForPush(c, seconds: 10) {
            let t = Date()
            while Processes.alive(pid) && Date().timeIntervalSince(t) < 30 { usleep(2_000) }
            lifetime = max(0.05, Date().timeIntervalSince(t))
        }
        var tally = Tally(name: "wal-push (archive_command, S3 over TLS)", seed: seed)
        for trial in 0..<Campaign.trials {
            let ctx = "wal-push seed \(seed) trial \(trial)"
            try Workload.touch(c, trial)
            try c.psql("SELECT pg_switch_wal()")
            guard let pid = waitForPush(c, seconds: 90) else {
                Issue.record(
                    "\(ctx): the archiver started no wal-push within 90 s: \(try c.psql("SELECT * FROM pg_stat_archiver"))"
                )
                continue
            }
            usleep(UInt32(Double.random(in: 0...(lifetime * 1.15), using: &rng) * 1e6))
            tally.add(Processes.alive(pid) && kill(pid, SIGKILL) == 0 ? 128 + SIGKILL : 0)
            while Processes.alive(pid) { usleep(2_000) }
            try inv.check(ctx + " after the kill")
        }
        // The archiver retries (PostgreSQL restarts it after a killed archive_command) and catches up.
        try c.switchAndWaitForArchive(timeout: 180)
        try inv.check("wal-push seed \(seed) after the archiver caught up")
        #expect(
            c.log.contains("terminated by signal 9") || c.log.contains("exit code 137") || tally.killed == 0,
            "the kills reached the archiver")
        try Workload.restoreAndCompare(c, "wal-push seed \(seed)")
        tally.record()
    }

    /// The archiver's `cairn wal-push` process for this cluster, once it runs. An archiver whose archive_command
    /// was killed exits (FATAL) and the postmaster starts a new one only on its next loop, which a new connection
    /// triggers at once: so connect every second while waiting.
    func waitForPush(_ c: ScratchCluster, seconds: Double) -> pid_t? {
        let deadline = Date().addingTimeInterval(seconds)
        var ping = Date()
        while Date() < deadline {
            if let pid = Processes.find([c.config!, "wal-push"]).first { return pid }
            if Date().timeIntervalSince(ping) > 1 {
                _ = try? c.psql("SELECT 1")
                ping = Date()
            }
            usleep(1_000)
        }
        return nil
    }

    /// `cairn expire` killed while it deletes manifests, bundles, WAL or leftovers.
    @Test func expire() throws {
        var (rng, seed) = Campaign.generator("expire")
        let c = try ScratchCluster(name: "crash-expire") {
            try TestRepository.config(
                .local, dir: $0, conninfo: $1, limits: ["bundle_size: 1MiB"],
                extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 1\n  orphan_safety_age: 1m")
        }
        defer { c.destroy() }
        let inv = try Invariants(c)
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 3)
        for _ in 0..<2 { #expect(try c.cairn(["backup"]).status == 0) }
        usleep(1_100_000)
        let (first, baseline) = try Campaign.timed { try c.cairn(["expire"]) }
        try #require(first.status == 0, "\(first.stderr)")
        var tally = Tally(name: "expire (local)", seed: seed)
        for trial in 0..<Campaign.trials {
            let ctx = "expire seed \(seed) trial \(trial)"
            try Workload.touch(c, trial)
            #expect(try c.cairn(["backup"]).status == 0)
            try Workload.touch(c, trial + 100)
            #expect(try c.cairn(["backup"]).status == 0)
            usleep(1_100_000)  // the older backups are now outside the 1 s window
            let p = try CairnProcess.start(config: c.config!, ["expire"])
            let status = p.kill9(after: Campaign.killDelay(trial: trial, baseline: baseline, using: &rng))
            tally.add(status)
            #expect(status == 0 || status == 128 + SIGKILL, "\(ctx): \(p.stderr)")
            try inv.check(ctx + " after the kill", walFloor: true)
            let next = try c.cairn(["expire"])
            #expect(next.status == 0, "\(ctx): the next expire: \(next.stderr)")
            let kept = try inv.check(ctx + " after the next run", walFloor: true)
            #expect(kept.count == 1, "\(ctx): the next expire keeps only the newest backup: \(kept)")
        }
        try Workload.restoreAndCompare(c, "expire seed \(seed)")
        tally.record()
    }

    /// `cairn restore` killed while it lays out bundles, then `restore --force` into the same directory: the
    /// result starts and holds the backup's data; the repository is untouched.
    @Test func restore() throws {
        var (rng, seed) = Campaign.generator("restore")
        let c = try ScratchCluster(name: "crash-restore") {
            try TestRepository.config(.s3, dir: $0, conninfo: $1, limits: ["bundle_size: 2MiB"])
        }
        defer { c.destroy() }
        let inv = try Invariants(c)
        #expect(try c.cairn(["init"]).status == 0)
        try Workload.initialize(c, scale: 4)
        #expect(try c.cairn(["backup"]).status == 0)
        let expected = try Workload.digest(c)
        try c.switchAndWaitForArchive()
        let committed = try inv.check("restore setup")
        let dir = c.dir + "/target"
        try Run.shell("mkdir -p \(dir) && chown postgres:postgres \(dir)")
        let args = ["restore", "--target-dir", dir + "/data", "--archive-mode", "off", "--force"]
        let (first, baseline) = try Campaign.timed { try c.cairn(args) }
        try #require(first.status == 0, "\(first.stderr)")
        var tally = Tally(name: "restore (S3 over TLS)", seed: seed)
        for trial in 0..<Campaign.trials {
            let ctx = "restore seed \(seed) trial \(trial)"
            let p = try CairnProcess.start(config: c.config!, args)
            let status = p.kill9(after: Campaign.killDelay(trial: trial, baseline: baseline, using: &rng))
            tally.add(status)
            #expect(status == 0 || status == 128 + SIGKILL, "\(ctx): \(p.stderr)")
            let again = try c.cairn(args)
            try #require(again.status == 0, "\(ctx): restore --force after the kill: \(again.stderr)")
            let r = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: c.config)
            try r.start()
            defer { r.stop(mode: "immediate") }
            try r.waitUntilPromoted()
            #expect(try Workload.digest(r) == expected, "\(ctx): the data restored after a killed restore differ")
        }
        #expect(try inv.check("restore seed \(seed) at the end") == committed, "a restore changes no backup")
        tally.record()
    }
}
