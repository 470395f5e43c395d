import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnCLI

@Suite struct ConfigLoaderTests {
    let loader = ConfigLoader(environment: [:])

    @Test func localRepositoryWithDefaults() throws {
        let c = try loader.load(
            text: """
                cluster:
                  connection: host=/tmp port=5432
                repository:
                  type: local
                  path: /var/lib/cairn/repo
                """, file: "cairn.yaml")
        guard case .local(let path) = c.repository else { Issue.record("not local"); return }
        #expect(path == "/var/lib/cairn/repo")
        #expect(c.compression.level == 3)
        #expect(c.limits.parallelism == 4)
        #expect(c.limits.partSize == 8 << 20)
        #expect(c.cluster.binDirectory == nil)  // not set: found by the server's major
    }

    @Test func s3RepositoryAndEnvironmentOverrides() throws {
        let text = """
            repository:
              type: s3
              bucket: backups
              prefix: prod/db1
              endpoint: https://s3.example.com:9000
              region: eu-west-1
              uri_style: path
              storage_class: STANDARD_IA
            compression:
              level: 6
            limits:
              part_size: 16MiB
              io_timeout: 45s
            """
        let c = try loader.load(text: text, file: "f.yaml")
        guard case .s3(let s3) = c.repository else { Issue.record("not s3"); return }
        #expect(s3.endpoint.absoluteString == "https://s3.example.com:9000")
        #expect(s3.region == "eu-west-1" && s3.uriStyle == .path && s3.prefix == "prod/db1")
        #expect(c.limits.partSize == 16 << 20 && c.limits.ioTimeout == 45 && c.compression.level == 6)

        let env = ConfigLoader(environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_REGION": "us-west-2"])
        let o = try env.load(text: text, file: "f.yaml")
        guard case .s3(let s3o) = o.repository else { Issue.record("not s3"); return }
        #expect(s3o.endpoint.absoluteString == "http://127.0.0.1:4566")
        #expect(s3o.region == "us-west-2")
        #expect(o.environmentOverrides == ["AWS_ENDPOINT_URL", "AWS_REGION"])
    }

    @Test func anUnknownKeyNamesTheKeyThatWasMeant() throws {
        let text = """
            cluster:
              bin_directry: /usr/lib/postgresql/15/bin
            repository:
              type: local
              path: /r
            compresion:
              level: 3
            limits:
              whatever: 1
            """
        let e = #expect(throws: ConfigError.self) { try loader.load(text: text, file: "/etc/cairn.yaml") }
        let lines = e?.problems.map { $0.description } ?? []
        #expect(
            lines.contains {
                $0.hasPrefix("/etc/cairn.yaml:2:")
                    && $0.contains("unknown key \"bin_directry\" in cluster: did you mean \"bin_directory\"?")
            }, "\(lines)")
        #expect(
            lines.contains {
                $0.hasPrefix("/etc/cairn.yaml:6:")
                    && $0.contains("unknown key \"compresion\" in the top level: did you mean \"compression\"?")
            }, "\(lines)")
        // Nothing close: the known keys instead of a guess.
        #expect(
            lines.contains {
                $0.contains("unknown key \"whatever\" in limits (known keys: ") && !$0.contains("did you mean")
            }, "\(lines)")
        #expect(YAMLReader.nearest("paralelism", in: ["parallelism", "part_size"]) == "parallelism")
        #expect(YAMLReader.nearest("db", in: ["database", "name", "sql"]) == nil)
    }

    @Test func everyProblemIsReportedWithItsLine() throws {
        let text = """
            cluster:
              conection: host=/tmp
            repository:
              type: s3
              bucket: Bad_Bucket
              endpoint: ftp://nowhere
              uri_style: virtual
            compression:
              level: 42
            limits:
              part_size: 1MiB
              io_timeout: soon
            """
        let e = #expect(throws: ConfigError.self) { try loader.load(text: text, file: "/etc/cairn.yaml") }
        let lines = e?.problems.map { $0.description } ?? []
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:2:") && $0.contains("unknown key \"conection\"") })
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:5:") && $0.contains("bucket") })
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:6:") && $0.contains("endpoint") })
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:7:") && $0.contains("uri_style") })
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:9:") && $0.contains("between 1 and 19") })
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:11:") && $0.contains("at least 5.0 MiB") })
        #expect(lines.contains { $0.hasPrefix("/etc/cairn.yaml:12:") && $0.contains("duration") })
        #expect(e?.problems.count == 7)
        #expect(e?.code == .configInvalid)
    }

    @Test func yamlSyntaxErrorsHaveALine() {
        let e = #expect(throws: ConfigError.self) {
            try loader.load(text: "repository:\n  type: local\n  path: [unclosed\n", file: "c.yaml")
        }
        #expect(e?.problems.first?.line != nil)
        #expect(e?.message.contains("YAML syntax error") == true)
    }

    @Test func missingRepositoryAndWrongTypes() {
        let e = #expect(throws: ConfigError.self) { try loader.load(text: "compression: fast\n", file: "c.yaml") }
        let text = e?.message ?? ""
        #expect(text.contains("compression must be a mapping"))
        #expect(text.contains("repository section is missing"))
    }

    @Test func localOnlyAndS3OnlyKeysAreNotMixed() {
        let e = #expect(throws: ConfigError.self) {
            try loader.load(text: "repository:\n  type: local\n  path: relative/path\n  bucket: b\n", file: "c.yaml")
        }
        #expect(e?.message.contains("absolute path") == true)
        #expect(e?.message.contains("repository.bucket applies to type: s3 only") == true)
    }

    @Test func missingFile() {
        let e = #expect(throws: ConfigError.self) { try loader.load(path: "/nonexistent/cairn.yaml") }
        #expect(e?.code == .configMissing)
        #expect(e?.hint?.contains("--config") == true)
    }

    @Test func configPathResolution() {
        #expect(ConfigLoader(environment: [:]).resolvePath(nil) == "cairn.yaml")
        #expect(ConfigLoader(environment: ["CAIRN_CONFIG": "/etc/c.yaml"]).resolvePath(nil) == "/etc/c.yaml")
        #expect(ConfigLoader(environment: ["CAIRN_CONFIG": "/etc/c.yaml"]).resolvePath("/x.yaml") == "/x.yaml")
    }

    @Test func conninfoPasswordsAreRedacted() {
        #expect(
            EffectiveSettings.redactConninfo("host=h password=s3cret user=u") == "host=h password=<redacted> user=u")
        #expect(EffectiveSettings.redactConninfo("host=h password='a b' user=u") == "host=h password=<redacted> user=u")
        #expect(EffectiveSettings.redactConninfo("postgresql://bob:s3cret@db/x") == "postgresql://bob:<redacted>@db/x")
        #expect(EffectiveSettings.redactConninfo("host=h") == "host=h")
    }
}

@Suite struct CredentialTests {
    let s3 = Configuration.S3Repo(
        bucket: "b", prefix: "", endpoint: URL(string: "http://x")!, region: "r", uriStyle: .path,
        caFile: nil, verifyTLS: true, storageClass: nil, serverSideEncryption: nil, kmsKeyId: nil,
        credentialsFile: nil, profile: "default")

    @Test func environmentWins() throws {
        var withFile = s3
        withFile.credentialsFile = "/nonexistent"
        let r = try CredentialResolver(environment: [
            "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "envsecret",
            "AWS_SESSION_TOKEN": "tok"
        ]).resolve(withFile)
        #expect(r.credentials.accessKeyId == "AKIAENV" && r.credentials.sessionToken == "tok")
        #expect(r.source.contains("environment"))
    }

    @Test func fileWithProfilesAndPermissionWarning() throws {
        let dir = try TestEnvironment.tempDirectory("creds")
        let path = dir + "/credentials"
        try
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n[profile backup]\naws_access_key_id=AKIABACKUP\naws_secret_access_key=b\naws_session_token=t\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        var cfg = s3
        cfg.credentialsFile = path
        let d = try CredentialResolver(environment: [:]).resolve(cfg)
        #expect(d.credentials.accessKeyId == "AKIADEFAULT")
        #expect(d.warnings.count == 1 && d.warnings[0].contains("chmod 600"))
        chmod(path, 0o600)
        let b = try CredentialResolver(environment: ["AWS_PROFILE": "backup"]).resolve(cfg)
        #expect(b.credentials.accessKeyId == "AKIABACKUP" && b.credentials.sessionToken == "t" && b.warnings.isEmpty)
        let e = #expect(throws: CairnError.self) {
            try CredentialResolver(environment: ["AWS_PROFILE": "nope"]).resolve(cfg)
        }
        #expect(e?.message.contains("[nope]") == true)
    }

    @Test func noCredentialsAtAll() {
        let e = #expect(throws: CairnError.self) { try CredentialResolver(environment: [:]).resolve(s3) }
        #expect(e?.code == .configInvalid)
        #expect(e?.hint?.contains("credentials_file") == true)
    }

    @Test func halfSetEnvironment() {
        #expect(throws: CairnError.self) { try CredentialResolver(environment: ["AWS_ACCESS_KEY_ID": "x"]).resolve(s3) }
    }
}

@Suite struct RetentionPolicyConfigTests {
    @Test func policyFileRelativeToTheConfigAndInline() throws {
        let dir = try TestEnvironment.tempDirectory("policy")
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        try "recovery_window: 14d\nmin_full_backups: 3\nlogical_backups: 60d\n".write(
            toFile: dir + "/policies/retention.yaml", atomically: true, encoding: .utf8)
        let base = "repository:\n  type: local\n  path: /r\n"
        let c = try ConfigLoader(environment: [:]).load(
            text: base + "retention: policies/retention.yaml\n", file: dir + "/cairn.yaml")
        #expect(c.retention.recoveryWindow == 14 * 86400)
        #expect(c.retention.minFullBackups == 3)
        #expect(c.retention.logicalRetention == 60 * 86400)
        #expect(c.retentionSource == dir + "/policies/retention.yaml")
        let inline = try ConfigLoader(environment: [:]).load(
            text: base + "retention:\n  recovery_window: 7d\n", file: dir + "/cairn.yaml")
        #expect(inline.retention.recoveryWindow == 7 * 86400)
        #expect(inline.retention.minFullBackups == 1)
        #expect(
            try ConfigLoader(environment: [:]).load(text: base, file: dir + "/cairn.yaml").retention.recoveryWindow
                == 30 * 86400)
    }

    @Test func theShippedExamplePolicyIsValid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../policies/retention.yaml"
        ).standardized.path
        let p = try PolicyLoader.retention(file: path)
        #expect(p.recoveryWindow == 30 * 86400)
        #expect(p.minFullBackups == 2)
    }

    @Test func badPoliciesAreReportedWithLines() throws {
        let dir = try TestEnvironment.tempDirectory("policy-bad")
        let path = dir + "/retention.yaml"
        try "recovery_window: forever\nmin_full_backups: 0\nkeep_everything: yes\norphan_safety_age: 5s\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let e = #expect(throws: ConfigError.self) { try PolicyLoader.retention(file: path) }
        let text = e?.message ?? ""
        #expect(e?.code == .policyInvalid)
        #expect(text.contains("\(path):1: recovery_window must be a duration"))
        #expect(text.contains("\(path):2: min_full_backups must be between 1"))
        #expect(text.contains("\(path):3: unknown key \"keep_everything\""))
        #expect(text.contains("\(path):4: orphan_safety_age must be at least 1m"))
        let missing = #expect(throws: ConfigError.self) {
            try ConfigLoader(environment: [:]).load(
                text: "repository:\n  type: local\n  path: /r\nretention: nope.yaml\n", file: dir + "/cairn.yaml")
        }
        #expect(missing?.message.contains("nope.yaml") == true)
    }
}

@Suite struct DrillPolicyConfigTests {
    @Test func theShippedExamplePolicyIsValid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../policies/drills.yaml"
        ).standardized.path
        let p = try PolicyLoader.drills(file: path)
        #expect(p.backup == .random && p.target == .random)
        #expect(p.assertions.count == 1 && p.assertions[0].database == "*")
        #expect(p.timeout == 3600)
        #expect(p.verification == .init(dayCoverage: 1, drillInterval: 7 * 86400))
    }

    @Test func verificationRequirementsAreRead() throws {
        let dir = try TestEnvironment.tempDirectory("drill-verification")
        let path = dir + "/drills.yaml"
        try "verification:\n  day_coverage: 99.5%\n  drill_interval: 3d\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect(try PolicyLoader.drills(file: path).verification == .init(dayCoverage: 0.995, drillInterval: 3 * 86400))
        try "verification:\n  day_coverage: 120%\n  drill_intervall: 3d\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let e = #expect(throws: ConfigError.self) { try PolicyLoader.drills(file: path) }
        #expect(
            e?.message.contains("\(path):2: verification.day_coverage must be a percentage") == true,
            "\(e?.message ?? "")")
        #expect(
            e?.message.contains("unknown key \"drill_intervall\" in verification: did you mean \"drill_interval\"?")
                == true)
    }

    @Test func badDrillPoliciesAreReportedWithLines() throws {
        let dir = try TestEnvironment.tempDirectory("drill-policy")
        let path = dir + "/drills.yaml"
        try "backup: oldest\nscratch_directory: tmp\nassertions:\n  - name: x\n  - sql: SELECT 1\n    db: app\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let e = #expect(throws: ConfigError.self) { try PolicyLoader.drills(file: path) }
        let text = e?.message ?? ""
        #expect(text.contains("\(path):1: backup must be one of \"latest\", \"random\""))
        #expect(text.contains("\(path):2: scratch_directory must be an absolute path"))
        #expect(text.contains("assertions[0].sql is required"))
        #expect(text.contains("assertions[1].name is required"))
        #expect(text.contains("unknown key \"db\""))
    }
}
