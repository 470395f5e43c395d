import CairnCore
import Foundation
import TestSupport
import Testing

/// Secrets never leak: the main commands run with known secret values — the S3 secret key, a PostgreSQL password
/// that the server really checks, and the repository's master key — while a sampler reads every process's
/// arguments; none appears in any output, log, report, command line, or file outside where it is configured.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct SecretsTests {
    /// Reads `/proc/*/cmdline` every few milliseconds until stopped; remembers every distinct command line.
    final class ArgvSampler: @unchecked Sendable {
        private let lock = NSLock()
        private var lines = Set<String>()
        private var running = true
        private var thread: Thread?

        func start() {
            let t = Thread { [self] in
                while lock.withLock({ running }) {
                    for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
                    where pid.allSatisfy(\.isNumber) {
                        guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !d.isEmpty else {
                            continue
                        }
                        let line = String(decoding: d.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                        lock.withLock { _ = lines.insert(line) }
                    }
                    usleep(5_000)
                }
            }
            thread = t
            t.start()
        }

        func stop() -> Set<String> {
            lock.withLock { running = false }
            usleep(20_000)
            return lock.withLock { lines }
        }
    }

    @Test func noSecretReachesOutputLogsReportsArgvOrFiles() throws {
        let pgSecret = "pg-Secret-\(UInt64.random(in: 1 << 40 ... 1 << 50))"
        let masterKey = Data(MasterKey.generate()).base64EncodedString()
        let s3Secret = TestEnvironment.value("CAIRN_TEST_S3_SECRET_KEY")
        let secrets = [pgSecret, masterKey, s3Secret]
        let c = try ScratchCluster(name: "secrets", settings: ["listen_addresses = '127.0.0.1'"]) { dir, conninfo in
            try Run.shell("mkdir -p \(dir)/drills \(dir)/out && chown postgres \(dir)/drills \(dir)/out")
            let port = conninfo.split(separator: " ").first { $0.hasPrefix("port=") }!.dropFirst(5)
            return try TestRepository.config(
                .s3, dir: dir,
                conninfo: "host=127.0.0.1 port=\(port) user=postgres dbname=postgres password=\(pgSecret)",
                extra: DrillTests.drillPolicy(dir), masterKey: masterKey)
        }
        defer { c.destroy() }
        // The server checks the password over TCP (the tests' own psql keeps using the socket).
        try c.psql("ALTER USER postgres PASSWORD '\(pgSecret)'")
        let hba = try String(contentsOfFile: c.data + "/pg_hba.conf", encoding: .utf8)
        try ("host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n" + hba)
            .write(toFile: c.data + "/pg_hba.conf", atomically: true, encoding: .utf8)
        try c.psql("SELECT pg_reload_conf()")
        let noPassword = try Run.program(
            c.bin + "/psql", ["-h", "127.0.0.1", "-p", String(c.port), "-U", "postgres", "-w", "-XAtc", "select 1"])
        #expect(noPassword.status != 0, "the server requires the password")

        let sampler = ArgvSampler()
        sampler.start()
        var outputs: [String: String] = [:]
        func run(_ args: [String]) throws {
            let r = try c.cairn(["--log-level", "trace"] + args)
            #expect(r.status == 0 || args.first == "doctor", "\(args): \(r.stderr)")
            outputs[args.joined(separator: " ")] = r.stdout + "\n" + r.stderr
        }
        try run(["init"])
        try c.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 3000) g")
        try run(["backup", "--json"])
        try run(["backup", "--type", "logical", "--json"])
        try c.switchAndWaitForArchive()
        for cmd in [
            ["list", "--json"], ["info", "--json"], ["verify", "--json"], ["drill", "--json"], ["doctor", "--json"],
            ["config", "show"], ["config", "show", "--json"], ["key", "status", "--json"],
            ["expire", "--dry-run", "--json"],
            ["report", "--output", c.dir + "/out"], ["--log-format", "json", "check"]
        ] {
            try run(cmd)
        }
        let restored = try c.restoreAndStart()
        defer { restored.destroy() }
        #expect(try restored.psql("SELECT count(*) FROM orders") == "3000")
        let argv = sampler.stop()

        // Outputs and logs of every command.
        for (cmd, out) in outputs {
            for s in secrets { #expect(!out.contains(s), "cairn \(cmd) printed a secret") }
        }
        #expect(outputs["config show"]?.contains("<redacted>") == true)
        // Process arguments of everything that ran meanwhile (cairn, pg_dump, pg_restore, pg_ctl, postgres…).
        #expect(
            argv.contains { $0.contains("wal-push") } && argv.contains { $0.contains("backup") },
            "the sampler saw the commands")
        for line in argv {
            for s in secrets { #expect(!line.contains(s), "a command line holds a secret: \(line.prefix(80))…") }
        }
        // Files: everything under the cluster's folder (server logs, restored and drill data directories,
        // reports, postgresql.auto.conf with restore_command), but the three places the secrets are configured.
        let stores: Set<String> = [c.config!, c.dir + "/aws-credentials", c.dir + "/master.key"]
        var scanned = 0
        let root = URL(fileURLWithPath: c.dir)
        for case let url as URL in FileManager.default.enumerator(
            at: root, includingPropertiesForKeys: [.isRegularFileKey])!
        {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                !stores.contains(url.path),
                let data = FileManager.default.contents(atPath: url.path)
            else { continue }
            scanned += 1
            for s in secrets { #expect(data.range(of: Data(s.utf8)) == nil, "\(url.path) holds a secret") }
        }
        // The plain objects of the repository (cairn.json, keyring, locks); the rest is encrypted.
        let raw = try ExpireTests.repository(c)
        for o in try raw.list(prefix: "") where EncryptedRepository.isPlain(o.key) {
            let text = String(decoding: try raw.getBytes(o.key), as: UTF8.self)
            for s in secrets { #expect(!text.contains(s), "\(o.key) holds a secret") }
        }
        Measurements.record([
            "secrets: \(outputs.count) commands, \(argv.count) distinct command lines sampled, \(scanned) files scanned, 0 secrets found"
        ])

        // Credential and key files readable by others are reported.
        try Run.shell("chmod 644 \(c.dir)/aws-credentials \(c.dir)/master.key")
        let loose = try c.cairn(["list"])
        try Run.shell("chmod 600 \(c.dir)/aws-credentials \(c.dir)/master.key")
        #expect(loose.status == 0)
        #expect(
            loose.stderr.contains("credentials file \(c.dir)/aws-credentials is readable by other users"),
            "\(loose.stderr)")
        #expect(
            loose.stderr.contains("master key file \(c.dir)/master.key is readable by other users"), "\(loose.stderr)")
    }
}
