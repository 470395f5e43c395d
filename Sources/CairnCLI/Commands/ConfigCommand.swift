import ArgumentParser
import CairnBase
import CairnCore
import CairnStorage
import Foundation

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show or validate the configuration.",
        subcommands: [Show.self, Validate.self, Example.self])

    /// `cairn config show`: the effective settings, secrets redacted.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the effective settings (file, then environment), secrets redacted.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print as JSON.") var json = false

        func run() async throws {
            let ctx = try AppContext.load(global)
            let view = try EffectiveSettings(ctx)
            if json { try Output.json(view) } else { Output.line(view.text) }
        }
    }

    /// `cairn config validate [FILE]`: every problem with its location.
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file and report every problem with its file:line.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The file to check (default: the configuration file in use).") var file: String?
        @Flag(name: .long, help: "Print the result as JSON (problems are reported as errors, with their exit code).")
        var json = false

        struct Result: Encodable {
            var file: String
            var ok = true
            var credentialsFrom: String?
            var masterKeyId: String?
            var warnings: [String] = []
            enum CodingKeys: String, CodingKey {
                case file, ok, warnings
                case credentialsFrom = "credentials_from"
                case masterKeyId = "master_key_id"
            }
        }

        func run() async throws {
            let loader = ConfigLoader()
            let path = file ?? loader.resolvePath(global.config)
            let config = try loader.load(path: path)
            var result = Result(file: path)
            if case .s3(let s3) = config.repository {
                let (_, source, warnings) = try CredentialResolver(environment: loader.environment).resolve(s3)
                result.credentialsFrom = source
                result.warnings = warnings
            }
            // The master key must be readable and well-formed wherever cairn runs (also as the archiver's user).
            switch config.encryption {
            case .file(let path)?: result.masterKeyId = try MasterKey.load(file: path, warnings: &result.warnings).id
            case .environment(let name)?:
                result.masterKeyId = try MasterKey.load(variable: name, environment: loader.environment).id
            case nil: break
            }
            if json { return try Output.json(result) }
            for w in result.warnings { Output.stderr("warning: \(w)") }
            Output.line(
                "\(path): ok\(result.credentialsFrom.map { " (S3 credentials from \($0))" } ?? "")\(result.masterKeyId.map { " (master key \($0))" } ?? "")"
            )
        }
    }

    /// `cairn config example`: a commented configuration to start from.
    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a commented example configuration.")
        func run() throws { Output.line(ConfigExample.text) }
    }
}

/// What `config show` prints.
struct EffectiveSettings: Encodable {
    var file: String
    var cluster: [String: String]
    var repository: [String: String]
    var compression: [String: Int]
    var archive: [String: String]
    var limits: [String: String]
    var retention: [String: String]
    var daemon: [String: String]
    var environmentOverrides: [String]

    init(_ ctx: AppContext) throws {
        let c = ctx.config
        file = c.sourcePath ?? "-"
        cluster = [
            "connection": EffectiveSettings.redactConninfo(c.cluster.connection),
            "data_directory": c.cluster.dataDirectory ?? "(from the server)",
            "bin_directory": c.cluster.binDirectory
                ?? "(by the major: /usr/lib/postgresql/<major>/bin or pg_config --bindir)",
            "backup_method": c.cluster.backupMethod.rawValue
        ]
        switch c.repository {
        case .local(let path):
            repository = ["type": "local", "path": path]
        case .s3(let s3):
            repository = EffectiveSettings.s3Settings(s3, ctx: ctx)
        }
        switch c.encryption {
        case nil: repository["encryption"] = "(none)"
        case .file(let path): repository["encryption"] = "aes-256-gcm, master key in file \(path)"
        case .environment(let name):
            repository["encryption"] = "aes-256-gcm, master key in environment variable \(name)"
        }
        compression = ["level": c.compression.level, "threads": c.compression.threads]
        archive = ["async": String(c.archive.async)]
        let l = c.limits
        limits = [
            "parallelism": String(l.parallelism), "part_size": Units.formatBytes(l.partSize),
            "connect_timeout": Units.formatDuration(l.connectTimeout), "io_timeout": Units.formatDuration(l.ioTimeout),
            "request_timeout": Units.formatDuration(l.requestTimeout), "retries": String(l.retries)
        ]
        let p = c.retention
        retention = [
            "source": c.retentionSource, "recovery_window": Units.formatDuration(p.recoveryWindow),
            "min_full_backups": String(p.minFullBackups), "logical_backups": Units.formatDuration(p.logicalRetention),
            "drill_records": Units.formatDuration(p.drillRetention), "reports": Units.formatDuration(p.reportRetention),
            "orphan_safety_age": Units.formatDuration(p.orphanSafetyAge)
        ]
        daemon = ["schedule": c.schedulePath ?? "(none)", "metrics_listen": c.metricsListen]
        environmentOverrides = c.environmentOverrides
    }

    /// An S3 repository's settings, the Object Lock period it implies, and where its credentials come from (the
    /// key id masked, secrets never shown).
    static func s3Settings(_ s3: Configuration.S3Repo, ctx: AppContext) -> [String: String] {
        let c = ctx.config
        var r = [
            "type": "s3", "bucket": s3.bucket, "prefix": s3.prefix, "endpoint": s3.endpoint.absoluteString,
            "region": s3.region, "uri_style": s3.uriStyle.rawValue, "verify_tls": String(s3.verifyTLS),
            "ca_file": s3.caFile ?? "(system)", "storage_class": s3.storageClass ?? "(bucket default)",
            "server_side_encryption": s3.serverSideEncryption ?? "(none)"
        ]
        if let k = s3.kmsKeyId { r["kms_key_id"] = k }
        if let lock = s3.objectLock {
            let period = ObjectLockPolicy.period(retention: c.retention, margin: lock.margin)
            r["object_lock"] =
                "\(lock.mode.rawValue.lowercased()), margin \(Units.formatDuration(lock.margin)): objects locked for \(Units.formatDuration(period)) from their write (recovery window + margin)"
                + (lock.testShortPeriods ? "; test_short_periods: on (margins under a day allowed)" : "")
        }
        do {
            let (creds, source, _) = try CredentialResolver(environment: ctx.environment).resolve(s3)
            r["access_key_id"] = AWSCredentials.mask(creds.accessKeyId)
            r["secret_access_key"] = "<redacted>"
            if creds.sessionToken != nil { r["session_token"] = "<redacted>" }
            r["credentials_from"] = source
        } catch {
            r["credentials_from"] = "(none: \(describeError(error).message))"
        }
        return r
    }

    enum CodingKeys: String, CodingKey {
        case file, cluster, repository, compression, archive, limits, retention, daemon
        case environmentOverrides = "environment_overrides"
    }

    var text: String {
        func block(_ name: String, _ d: [String: String]) -> String {
            "\(name):\n" + d.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }.joined(separator: "\n")
        }
        var s = "# effective settings from \(file)\n"
        s += block("cluster", cluster) + "\n" + block("repository", repository) + "\n"
        s += block("compression", compression.mapValues(String.init)) + "\n" + block("archive", archive) + "\n"
        s += block("limits", limits) + "\n"
        s += block("retention", retention) + "\n" + block("daemon", daemon)
        if !environmentOverrides.isEmpty {
            s += "\n# overridden by the environment: \(environmentOverrides.joined(separator: ", "))"
        }
        return s
    }

    /// Replaces `password=…` (keyword form) and the password of a `postgresql://user:pw@` URI.
    static func redactConninfo(_ s: String) -> String {
        var out = s
        if let r = out.range(of: #"password\s*=\s*('([^'\\]|\\.)*'|\S+)"#, options: .regularExpression) {
            out.replaceSubrange(r, with: "password=<redacted>")
        }
        if let r = out.range(of: #"(?<=://)([^:@/]+):([^@/]+)@"#, options: .regularExpression) {
            let userPart = out[r].split(separator: ":")[0]
            out.replaceSubrange(r, with: "\(userPart):<redacted>@")
        }
        return out
    }
}
