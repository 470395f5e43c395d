import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

/// `cairn daemon` with an every-minute schedule against a real cluster and the S3 emulator: it takes backups on
/// time, serves metrics that promtool accepts, never runs one job twice at once across two daemons, and stops
/// gracefully without leaving a committed partial backup.
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct DaemonTests {
    static func committedBackups(_ c: ScratchCluster) throws -> [BackupManifest] {
        try Catalog.load(from: ExpireTests.repository(c)).backups
    }

    static func waitFor(_ what: String, timeout: Double, _ body: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try body() { return }
            usleep(500_000)
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    @Test func twoDaemonsBackUpOnTimeServeMetricsAndStopGracefully() throws {
        let c = try ScratchCluster(name: "daemon") { dir, conninfo in
            try "jobs:\n  backup-full:\n    cron: \"* * * * *\"\n    max_run_time: 5m\n".write(
                toFile: dir + "/schedule.yaml", atomically: true, encoding: .utf8)
            try Run.shell("chown postgres \(dir)/schedule.yaml")
            // The streamed method: a file-level backup of this small cluster ends too quickly for the test to
            // stop the daemon while one runs.
            return try TestRepository.config(
                .s3, dir: dir, conninfo: conninfo, limits: ["bundle_size: 4MiB"], extra: "schedule: schedule.yaml",
                cluster: ["backup_method: stream"])
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 10 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        #expect(try c.cairn(["schedule"]).stdout.contains("backup-full"))
        #expect(try c.cairn(["schedule", "show", "--json"]).stdout.contains("\"cron\" : \"* * * * *\""))
        let crontab = try c.cairn(["schedule", "print-crontab"]).stdout
        #expect(crontab.contains("* * * * * timeout --signal=TERM --kill-after=30 300 "))
        #expect(crontab.contains("backup --lock-ttl 600 --log-format json"))

        let (portA, portB) = (ScratchCluster.freePort(), ScratchCluster.freePort())
        let a = try Run.spawnCairnAsPostgres(["--config", c.config!, "daemon", "--listen", "127.0.0.1:\(portA)"])
        let b = try Run.spawnCairnAsPostgres(["--config", c.config!, "daemon", "--listen", "127.0.0.1:\(portB)"])
        var daemons = [a, b]
        defer { for p in daemons { kill(p, SIGKILL); Run.wait(p) } }

        // Two scheduled minutes with both daemons: one backup per minute, never two at once.
        try Self.waitFor("two backups", timeout: 200) { try Self.committedBackups(c).count >= 2 }
        let backups = try Self.committedBackups(c)
        for (x, y) in zip(backups, backups.dropFirst()) {
            #expect(y.start.time >= x.stop.time, "backups \(x.id) and \(y.id) overlapped")
        }
        let minutes = backups.map { Int($0.start.time.timeIntervalSince1970 / 60) }
        #expect(Set(minutes).count == minutes.count, "one backup per scheduled minute: \(backups.map(\.id))")

        // Metrics in the Prometheus text format, accepted by promtool.
        let metrics = try Run.program("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(portA)/metrics"])
        #expect(metrics.status == 0)
        #expect(metrics.stdout.contains("cairn_backups{kind=\"full\"}"))
        #expect(metrics.stdout.contains("cairn_job_last_success_timestamp_seconds{job=\"backup-full\"}"))
        #expect(metrics.stdout.contains("cairn_recovery_window_end_timestamp_seconds"))
        #expect(metrics.stdout.contains("cairn_job_next_run_timestamp_seconds{job=\"backup-full\"}"))
        let check = try Run.program("/bin/bash", ["-c", "promtool check metrics"], stdin: metrics.stdout)
        #expect(check.status == 0, "promtool: \(check.stdout)\(check.stderr)")
        #expect(try Run.program("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(portB)/healthz"]).stdout == "ok\n")
        let textfile = c.dir + "/cairn.prom"
        try Run.shell("touch \(textfile) && chown postgres \(textfile)")
        #expect(try c.cairn(["metrics", "--textfile", textfile]).status == 0)
        let tf = try Run.program("/bin/bash", ["-c", "promtool check metrics < \(textfile)"])
        #expect(tf.status == 0, "\(tf.stdout)\(tf.stderr)")

        // SIGTERM while a backup runs: the daemon stops, the interrupted backup is not committed.
        kill(b, SIGTERM)
        #expect(Run.wait(b) == 0)
        daemons = [a]
        // A backup holds its lease (leases/backup-…) from start to commit: one LIST sees it, where loading the
        // whole catalog to look for uncommitted objects could miss a short run.
        try Self.waitFor("a backup in progress", timeout: 150) {
            !(try ExpireTests.repository(c).list(prefix: Layout.leasesPrefix + "backup-").isEmpty)
        }
        let before = try Self.committedBackups(c).count
        kill(a, SIGTERM)
        let start = Date()
        #expect(Run.wait(a) == 0)
        #expect(Date().timeIntervalSince(start) < 60)
        daemons = []
        let afterStop = try Self.committedBackups(c)
        // The interrupted job freed its lock at once and says in the history why it ended.
        let repo = try ExpireTests.repository(c)
        #expect(try repo.head(RepositoryLock.key("backup-full")) == nil, "the lock was released on SIGTERM")
        let records = try JobRecord.load(month: JobRecord.month(Date()), from: repo)
        #expect(records.contains { $0.job == "backup-full" && $0.outcome == .failed && $0.errorCode == "interrupted" })
        #expect(afterStop.count == before, "the interrupted backup was not committed")
        for m in afterStop {
            for o in m.allObjects {
                #expect(try ExpireTests.repository(c).head(o.key) != nil, "backup \(m.id) lost \(o.key)")
            }
        }

        // Restarted, the next run succeeds.
        let again = try Run.spawnCairnAsPostgres([
            "--config", c.config!, "daemon", "--listen", "127.0.0.1:\(ScratchCluster.freePort())"
        ])
        daemons = [again]
        try Self.waitFor("the next backup after a restart", timeout: 150) {
            try Self.committedBackups(c).count > before
        }
    }

    /// The daemon's smoke path on the other majors (the test above runs on 15): a scheduled backup of the
    /// cluster with the programs of its major, metrics that promtool accepts, and a graceful stop.
    @Test(arguments: PGMajor.tested.filter { $0 != .v15 })
    func theDaemonBacksUpOtherMajors(major: PGMajor) throws {
        let c = try ScratchCluster(name: "daemon-\(major)", major: major) { dir, conninfo in
            try "jobs:\n  backup-full:\n    cron: \"* * * * *\"\n    max_run_time: 5m\n".write(
                toFile: dir + "/schedule.yaml", atomically: true, encoding: .utf8)
            try Run.shell("chown postgres \(dir)/schedule.yaml")
            return try TestRepository.config(
                .s3, dir: dir, conninfo: conninfo, major: major, extra: "schedule: schedule.yaml")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        let port = ScratchCluster.freePort()
        let d = try Run.spawnCairnAsPostgres(["--config", c.config!, "daemon", "--listen", "127.0.0.1:\(port)"])
        var running = true
        defer { if running { kill(d, SIGKILL); Run.wait(d) } }

        try Self.waitFor("a scheduled backup", timeout: 150) { try !Self.committedBackups(c).isEmpty }
        let backup = try #require(try Self.committedBackups(c).first)
        #expect(backup.pgVersionNum / 10000 == major.rawValue)
        let metrics = try Run.program("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"])
        #expect(metrics.stdout.contains("cairn_job_last_success_timestamp_seconds{job=\"backup-full\"}"))
        let check = try Run.program("/bin/bash", ["-c", "promtool check metrics"], stdin: metrics.stdout)
        #expect(check.status == 0, "promtool: \(check.stdout)\(check.stderr)")
        kill(d, SIGTERM)
        #expect(Run.wait(d) == 0)
        running = false
        // What the daemon took restores on this major.
        let restored = try c.restoreAndStart(["--backup", backup.id, "--immediate"])
        defer { restored.stop() }
        #expect(try restored.psql("SELECT count(*) FROM t") == "1000")
    }

    /// A drill limited to 2 seconds: the daemon stops it, counts the timeout, and the drill leaves no scratch
    /// cluster, no lock and an `interrupted` job record behind.
    @Test func aJobOverItsMaximumRunTimeIsStoppedAndReported() throws {
        let c = try DrillTests.makeCluster(
            "daemon-timeout", repo: .local, extra: "schedule: schedule.yaml",
            files: ["schedule.yaml": "jobs:\n  drill:\n    cron: \"* * * * *\"\n    max_run_time: 2s\n"],
            // However fast the restore, the drill's checks outlast its 2 seconds.
            assertions: "    - name: slow\n      database: postgres\n      sql: SELECT true FROM pg_sleep(60)")
        defer { c.destroy() }
        let port = ScratchCluster.freePort()
        let d = try Run.spawnCairnAsPostgres(["--config", c.config!, "daemon", "--listen", "127.0.0.1:\(port)"])
        defer { kill(d, SIGKILL); Run.wait(d) }
        let repo = try ExpireTests.repository(c)
        try Self.waitFor("the drill to be stopped", timeout: 150) {
            try JobRecord.load(month: JobRecord.month(Date()), from: repo).contains {
                $0.job == "drill" && $0.errorCode == "interrupted"
            }
        }
        try Self.waitFor("the daemon to notice", timeout: 40) {
            let m = try Run.program("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"]).stdout
            return m.contains("cairn_job_timeouts{job=\"drill\"} 1") && m.contains("cairn_job_running{job=\"drill\"} 0")
        }
        #expect(try repo.head(RepositoryLock.key("drill")) == nil, "the stopped drill released its lock")
        let left = try Run.shell("ls -lR \(c.dir)/drills | head -20").stdout
        #expect(DrillTests.drillFolderIsEmpty(c), "the stopped drill removed its scratch cluster: \(left)")
        let records = try repo.list(prefix: "drills/").map(\.key)
        let history = try JobRecord.load(month: JobRecord.month(Date()), from: repo)
        #expect(records.isEmpty, "no drill record for a drill that did not finish: \(records) \(history)")
    }
}
