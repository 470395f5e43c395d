import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

/// One bad input, run as a user would: the real `cairn` binary against a real PostgreSQL 15 cluster and a local
/// or S3 repository. The outcome must be the documented exit code (runbooks/error-codes.md) with one
/// `cairn: error: … [code]` line and a `HINT:` where the user can act, never a crash, and no data lost.
struct BadInput: Sendable, CustomTestStringConvertible {
    let name: String
    /// The code in brackets; nil for inputs that are odd but valid (the command must succeed).
    let code: ErrorCode?
    /// The exit code when it is not the code's own (wal-fetch's 126).
    var exit: Int32?
    /// Whether a HINT line is expected.
    var hint = true
    /// Text stderr must contain (names what is wrong).
    var says: [String] = []
    /// The case could damage something: the shared repository must still verify and the cluster keep its data.
    var touchesData = false
    let run: @Sendable (BadInputFixture) throws -> ProcessResult

    var testDescription: String { name }
    var expectedExit: Int32 { exit ?? code?.exitCode ?? 0 }

    init(
        _ name: String, _ code: ErrorCode?, exit: Int32? = nil, hint: Bool = true, says: [String] = [],
        touchesData: Bool = false, _ run: @escaping @Sendable (BadInputFixture) throws -> ProcessResult
    ) {
        self.name = name
        self.code = code
        self.exit = exit
        self.hint = hint
        self.says = says
        self.touchesData = touchesData
        self.run = run
    }

    /// Checks what the user sees.
    func check(_ r: ProcessResult) {
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let crash = [
            "Fatal error", "Stack dump", "Backtrace", "Current stack trace", "💣", "Segmentation fault", "SIGSEGV"
        ]
        #expect(!crash.contains { r.stderr.contains($0) || r.stdout.contains($0) }, "\(name): crashed\n\(r.stderr)")
        #expect(r.status < 128, "\(name): killed by signal \(r.status - 128)")
        #expect(r.status == expectedExit, "\(name): exit \(r.status), expected \(expectedExit)\n\(r.stderr)")
        guard let code else {
            #expect(!r.stderr.contains("cairn: error:"), "\(name): valid input refused\n\(r.stderr)")
            return
        }
        #expect(
            lines.count == (hint ? 2 : 1), "\(name): expected one error line\(hint ? " and a HINT" : "")\n\(r.stderr)")
        if let first = lines.first {
            #expect(first.hasPrefix("cairn: error: ") && first.hasSuffix("[\(code.rawValue)]"), "\(name): \(first)")
            #expect(!first.dropFirst(14).hasSuffix(". [\(code.rawValue)]"), "\(name): message ends with a period")
        }
        if hint, lines.count > 1 {
            #expect(lines[1].hasPrefix("HINT: ") && lines[1].count > 12, "\(name): \(lines[1])")
        }
        for s in says { #expect(r.stderr.contains(s), "\(name): stderr does not say \"\(s)\"\n\(r.stderr)") }
    }
}

@Suite(.enabled(if: TestEnvironment.integrationEnabled), BadInputFixture.Scope())
struct BadInputTests {
    func run(_ c: BadInput) throws {
        let f = try BadInputFixture.shared
        let r = try c.run(f)
        c.check(r)
        if c.touchesData { try f.expectIntact(c.name) }
    }

    @Test(arguments: BadInput.configuration) func configuration(_ c: BadInput) throws { try run(c) }
    @Test(arguments: BadInput.storage) func storage(_ c: BadInput) throws { try run(c) }
    @Test(arguments: BadInput.repository) func repository(_ c: BadInput) throws { try run(c) }
    @Test(arguments: BadInput.restore) func restore(_ c: BadInput) throws { try run(c) }
    @Test(arguments: BadInput.postgres) func postgres(_ c: BadInput) throws { try run(c) }
}

// MARK: - the table: configuration and policies

extension BadInput {
    static let configuration: [BadInput] = [
        .init("malformed YAML", .configInvalid, says: ["YAML syntax error"]) { f in
            try f.cairn(["check"], config: f.write("yaml", "repository:\n  type: local\n  path: [unclosed\n"))
        },
        .init("unknown key", .configInvalid, says: ["unknown key \"paralelism\""]) { f in
            try f.cairn(["check"], config: f.config("unknown", extra: "  paralelism: 2\n"))
        },
        .init("parallelism 0", .configInvalid, says: ["limits.parallelism must be between 1 and 64"]) { f in
            try f.cairn(["backup"], config: f.config("par0", extra: "  parallelism: 0\n"))
        },
        .init("negative size", .configInvalid, says: ["limits.part_size"]) { f in
            try f.cairn(["backup"], config: f.config("negsize", replacing: [("part_size: 5MiB", "part_size: -5MiB")]))
        },
        .init(
            "request timeout shorter than connect timeout", .configInvalid,
            says: ["request_timeout must not be shorter"]
        ) { f in
            try f.cairn(
                ["check"],
                config: f.config(
                    "timeouts", replacing: [("request_timeout: 60s", "request_timeout: 2s")],
                    extra: "  connect_timeout: 10s\n"))
        },
        .init("s3 key in a local repository", .configInvalid, says: ["applies to type: s3 only"]) { f in
            try f.cairn(
                ["list"], config: f.config("mixed", replacing: [("  type: local\n", "  type: local\n  bucket: b\n")]))
        },
        .init("relative repository path", .configInvalid, says: ["must be an absolute path"]) { f in
            try f.cairn(["list"], config: f.config("relpath", replacing: [("path: \(f.repo)", "path: ../repo")]))
        },
        .init("no configuration file", .configMissing, says: ["configuration file not found"]) { f in
            try f.cairn(["list"], config: "/nonexistent/cairn.yaml")
        },
        .init("retention policy: not a duration", .policyInvalid, says: ["recovery_window must be a duration"]) { f in
            let p = try f.write("ret-dur", "recovery_window: forever\n", file: "retention.yaml")
            return try f.cairn(["expire", "--dry-run", "--policy", p], config: f.copyRepository("ret-dur").config)
        },
        .init("retention policy: orphan age too short", .policyInvalid, says: ["orphan_safety_age must be at least 1m"])
        { f in
            let p = try f.write("ret-orphan", "orphan_safety_age: 5s\n", file: "retention.yaml")
            return try f.cairn(["expire", "--policy", p], config: f.copyRepository("ret-orphan").config)
        },
        .init(
            "retention shorter than the backups it must protect", .configInvalid,
            says: ["orphan_safety_age", "max_run_time"], touchesData: true
        ) { f in
            let dir = try f.folder("ret-vs-schedule")
            try "jobs:\n  backup-full:\n    cron: \"0 1 * * *\"\n    max_run_time: 8h\n".write(
                toFile: dir + "/schedule.yaml", atomically: true, encoding: .utf8)
            let c = try f.config(
                "ret-vs-schedule", extra: "schedule: \(dir)/schedule.yaml\nretention:\n  orphan_safety_age: 1h\n")
            return try f.cairn(["expire"], config: c)
        },
        .init("schedule policy: bad cron", .policyInvalid, says: ["jobs.backup-full.cron"]) { f in
            let p = try f.write(
                "sched-cron", "jobs:\n  backup-full:\n    cron: \"61 25 * * *\"\n", file: "schedule.yaml")
            return try f.cairn(["schedule", "--schedule", p])
        },
        .init("drill policy: malformed YAML", .policyInvalid, says: ["YAML syntax error"]) { f in
            let p = try f.write("drill-yaml", "assertions:\n  - name: [x\n", file: "drills.yaml")
            return try f.cairn(["drill", "--policy", p], config: f.copyRepository("drill-yaml").config)
        },
        .init("schedule policy: unknown time zone", .policyInvalid, says: ["Mars/Olympus_Mons"]) { f in
            let p = try f.write(
                "sched-tz", "time_zone: Mars/Olympus_Mons\njobs:\n  verify:\n    cron: \"@daily\"\n",
                file: "schedule.yaml")
            return try f.cairn(["schedule", "--schedule", p])
        },
        .init("drill policy: unknown backup choice", .policyInvalid, says: ["backup must be one of"]) { f in
            let p = try f.write("drill-pol", "backup: oldest\n", file: "drills.yaml")
            return try f.cairn(["drill", "--policy", p], config: f.copyRepository("drill-pol").config)
        },
        .init("unknown option", .usage, hint: true, says: ["--fast"]) { f in
            try f.cairn(["backup", "--fast"])
        },
        .init("wal timeout that is not a duration", .usage, says: ["--wal-timeout"]) { f in
            try f.cairn(["backup", "--wal-timeout", "soon"])
        }
    ]
}

// MARK: - the table: where backups go

extension BadInput {
    /// An S3 configuration for the test emulator (or `endpoint`) under a fresh prefix.
    static func s3(
        _ f: BadInputFixture, _ name: String, secret: String? = nil, bucket: String? = nil, endpoint: String? = nil
    ) throws -> String {
        let dir = try f.folder(name)
        var path = try TestCluster.s3Config(
            prefix: TestEnvironment.uniqueName(name), in: dir, secret: secret, bucket: bucket,
            extra: "  connect_timeout: 2s\n")
        if let endpoint {
            let text = try String(contentsOfFile: path, encoding: .utf8)
                .replacingOccurrences(of: TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT"), with: endpoint)
                .replacingOccurrences(of: "retries: 3", with: "retries: 0")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try Run.shell("chown -R postgres:postgres \(dir)")
        path = dir + "/cairn.yaml"
        return path
    }

    /// Runs `args` against an S3 repository behind the fault proxy answering every request with `status`/`code`.
    static func throughProxy(
        _ f: BadInputFixture, _ name: String, status: Int, code: String, _ args: [String]
    ) throws -> ProcessResult {
        let proxy = try FaultProxy()
        defer { proxy.stop() }
        try proxy.script(
            #"{"times": -1, "action": {"status": \#(status), "code": "\#(code)", "message": "simulated"}}"#)
        return try f.cairn(args, config: s3(f, name, endpoint: proxy.endpoint.absoluteString))
    }

    static let storage: [BadInput] = [
        .init("wrong S3 secret", .repoAuth, says: ["SignatureDoesNotMatch"]) { f in
            let r = try f.cairn(["list"], config: s3(f, "secret", secret: "wrong-secret-value"))
            #expect(!r.stderr.contains("wrong-secret-value"), "the secret is printed")
            return r
        },
        .init("missing bucket", .repoBucketMissing, says: ["no-such-bucket"]) { f in
            try f.cairn(["list"], config: s3(f, "nobucket", bucket: "no-such-bucket"))
        },
        .init("no S3 credentials", .configInvalid, says: ["credentials"]) { f in
            let c = try s3(f, "nocreds")
            try Run.shell("rm \((c as NSString).deletingLastPathComponent)/aws-credentials")
            return try f.cairn(["list"], config: c)
        },
        // moto's IAM would need a second user created before signatures are enforced (scripts/test-env.sh makes
        // one user with s3:*), so the refusal is S3's answer played by the fault proxy.
        .init("S3 user without rights", .repoAccessDenied, says: ["AccessDenied", "s3:GetObject"]) { f in
            try throughProxy(f, "denied", status: 403, code: "AccessDenied", ["list"])
        },
        // The emulator does not check request times; the proxy answers what S3 does for a skewed clock.
        .init("clock skew against S3", .repoAuth, says: ["clock"]) { f in
            try throughProxy(f, "skew", status: 403, code: "RequestTimeTooSkewed", ["list"])
        },
        .init("S3 endpoint unreachable", .repoUnreachable, says: ["127.0.0.1:9"]) { f in
            try f.cairn(["list"], config: s3(f, "unreach", endpoint: "http://127.0.0.1:9"))
        },
        .init("local repository not writable", .repoAccessDenied, says: ["make"]) { f in
            let dir = try f.folder("ro")
            try Run.shell("mkdir \(dir)/repo && chown root:root \(dir)/repo && chmod 555 \(dir)/repo")
            return try f.cairn(["init"], config: f.config("ro", replacing: [("path: \(f.repo)", "path: \(dir)/repo")]))
        },
        .init("full disk under the repository", .repoNoSpace, touchesData: true) { f in
            let size =
                Int(try Run.shell("du -sb \(f.repo) | cut -f1").stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                ?? 0
            let disk = try SmallDisk("repo", bytes: size + (1 << 20))
            defer { disk.unmount() }
            let (config, repo) = try f.copyRepository("fullrepo", at: disk.path + "/repo")
            let before = try BadInputFixture.snapshot(repo)
            let r = try f.cairn(["backup", "--wal-timeout", "30s"], config: config)
            // The committed backup and the WAL on the full disk are unchanged and still verify.
            #expect(try BadInputFixture.snapshot(repo) == before)
            let v = try f.cairn(["verify", "--full"], config: config)
            #expect(v.status == 0, "verify on the full disk: \(v.stdout)\(v.stderr)")
            return r
        },
        .init("full disk under the restore target", .repoNoSpace, touchesData: true) { f in
            let disk = try SmallDisk("target", bytes: 8 << 20)
            defer { disk.unmount() }
            return try f.cairn(["restore", "--target-dir", disk.path + "/data", "--archive-mode", "off"])
        }
    ]
}
