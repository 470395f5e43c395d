import CairnBase
import CairnCore
import CairnStorage
import Foundation
import Yams

/// Reads `cairn.yaml`, applies the environment, and validates everything, reporting every problem at once.
public struct ConfigLoader {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The configuration path: `--config`, else `$CAIRN_CONFIG`, else `./cairn.yaml`.
    public func resolvePath(_ flag: String?) -> String {
        flag ?? environment["CAIRN_CONFIG"] ?? "cairn.yaml"
    }

    /// Loads and validates a file.
    public func load(path: String) throws -> Configuration {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(
                .configMissing,
                problems: [ConfigProblem(file: path, line: nil, message: "configuration file not found")],
                hint: "pass --config PATH, set CAIRN_CONFIG, or create ./cairn.yaml (see `cairn config example`)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(
                .configMissing,
                problems: [ConfigProblem(file: path, line: nil, message: "configuration file is not readable")],
                hint: "make the file readable by the user cairn runs as (uid \(getuid()))")
        }
        return try load(text: String(decoding: data, as: UTF8.self), file: path)
    }

    /// Loads and validates configuration text (`file` names it in messages).
    public func load(text: String, file: String) throws -> Configuration {
        let r = YAMLReader(file: file)
        guard let root = r.parse(text) else {
            throw ConfigError(problems: r.problems, hint: "fix the file and check it with `cairn config validate`")
        }
        let top = r.section(
            root, path: "",
            allowed: [
                "cluster", "repository", "repositories", "compression", "archive", "limits", "retention", "drills",
                "schedule", "metrics"
            ])
        var overrides: [String] = []
        let cluster = loadCluster(top, r)
        let repositories = loadRepositories(top, r, &overrides)
        let z = top?.section("compression", allowed: ["level", "threads"])
        let compression = Configuration.Compression(
            level: z?.int("level", range: 1...19) ?? 3,
            threads: z?.int("threads", range: 0...64) ?? 0)
        let a = top?.section("archive", allowed: ["async", "max_backlog"])
        let archive = Configuration.Archive(
            async: a?.bool("async") ?? false, maxBacklog: a?.size("max_backlog", min: 16 << 20) ?? 1 << 30)
        let limits = loadLimits(top, r)
        let (retention, retentionSource) = try loadRetention(top, r, file: file)
        let drills = try loadDrills(top, r, file: file)
        let (schedulePath, schedule) = try loadSchedule(top, r, file: file)
        checkOrphanSafetyAge(retention, schedule, top, r)
        let listen = loadMetricsListen(top, r)

        if !r.problems.isEmpty {
            throw ConfigError(problems: r.problems, hint: "fix the file and check it with `cairn config validate`")
        }
        return Configuration(
            cluster: cluster, repositories: repositories, compression: compression,
            archive: archive, limits: limits,
            retention: retention, retentionSource: retentionSource, schedulePath: schedulePath,
            metricsListen: listen, drills: drills,
            sourcePath: file, environmentOverrides: overrides)
    }

    /// `cluster`: how to reach the cluster, its data and program directories, the backup method.
    private func loadCluster(_ top: YAMLReader.Section?, _ r: YAMLReader) -> Configuration.Cluster {
        let c = top?.section("cluster", allowed: ["connection", "data_directory", "bin_directory", "backup_method"])
        let cluster = Configuration.Cluster(
            connection: c?.string("connection") ?? "",
            dataDirectory: c?.string("data_directory"),
            binDirectory: c?.string("bin_directory"),
            backupMethod: c?.choice("backup_method", BackupMethod.allCases.map(\.rawValue)).flatMap(
                BackupMethod.init(rawValue:)) ?? .auto)
        if let d = cluster.dataDirectory, !d.hasPrefix("/") {
            r.report(line: c?.line("data_directory"), "cluster.data_directory must be an absolute path")
        }
        return cluster
    }

    /// The keys of a repository section (`repository:`, or an entry of `repositories:` with its `name`).
    static let repositoryKeys = [
        "type", "path", "bucket", "prefix", "endpoint", "region", "uri_style", "ca_file", "verify_tls",
        "storage_class", "server_side_encryption", "kms_key_id", "credentials_file", "profile", "encryption",
        "object_lock"
    ]

    /// `repository` (one, named `default`) or `repositories` (a list, each with a unique `name`; the first is the
    /// primary). The AWS environment variables override the endpoint and region of `repository:` only.
    private func loadRepositories(
        _ top: YAMLReader.Section?, _ r: YAMLReader, _ overrides: inout [String]
    ) -> [Configuration.NamedRepository] {
        let fallback = [Configuration.NamedRepository(name: "default", kind: .local(path: "/var/lib/cairn/repo"))]
        if top?.node("repository") != nil && top?.node("repositories") != nil {
            r.report(
                line: top?.line("repositories"),
                "give either repository (one) or repositories (a list), not both")
            return fallback
        }
        if let rs = top?.section("repository", allowed: Self.repositoryKeys) {
            let (kind, encryption) = loadRepository(rs, r, &overrides)
            return [
                Configuration.NamedRepository(name: "default", kind: kind ?? fallback[0].kind, encryption: encryption)
            ]
        }
        guard let list = top?.node("repositories") else {
            if top?.node("repository") == nil {
                r.report(
                    line: nil,
                    "repository section is missing: say where backups go (type: local with path, or type: s3 with bucket)"
                )
            }
            return fallback
        }
        guard let items = list.sequence, !items.isEmpty else {
            r.report(list, "repositories must be a list of repositories, each with a name")
            return fallback
        }
        var named: [Configuration.NamedRepository] = []
        for (i, item) in items.enumerated() {
            if let m = loadListedRepository(item, position: i + 1, r, taken: named.map(\.name)) { named.append(m) }
        }
        return named.isEmpty ? fallback : named
    }

    /// One entry of `repositories`: its `name` (letters, digits, `-`, `_`, unique) and its repository. Each of
    /// several repositories says where it is: AWS_ENDPOINT_URL and AWS_REGION would move all of them.
    private func loadListedRepository(
        _ item: Node, position: Int, _ r: YAMLReader, taken: [String]
    ) -> Configuration.NamedRepository? {
        let label = item.mapping?[Node("name")]?.scalar?.string ?? "\(position)"
        guard let rs = r.section(item, path: "repositories.\(label)", allowed: ["name"] + Self.repositoryKeys),
            rs.require("name", "a short name for messages and --repo"), let name = rs.string("name")
        else { return nil }
        if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            r.report(line: rs.line("name"), "repositories: name \"\(name)\" may hold only letters, digits, - and _")
        }
        if taken.contains(name) { r.report(line: rs.line("name"), "repositories: the name \"\(name)\" is used twice") }
        var own = self
        own.environment = environment.filter {
            !["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"].contains($0.key)
        }
        var none: [String] = []
        let (kind, encryption) = own.loadRepository(rs, r, &none)
        return kind.map { .init(name: name, kind: $0, encryption: encryption) }
    }

    /// One repository section: a local folder or an S3 bucket (with overrides from the environment), and its
    /// encryption key; nil when it is not usable (the problems are reported).
    private func loadRepository(
        _ rs: YAMLReader.Section, _ r: YAMLReader, _ overrides: inout [String]
    ) -> (Configuration.RepositoryKind?, Configuration.EncryptionKey?) {
        var repository: Configuration.RepositoryKind?
        let type = rs.choice("type", ["local", "s3"]) ?? (rs.node("bucket") != nil ? "s3" : "local")
        if type == "local" {
            for k in [
                "bucket", "endpoint", "uri_style", "storage_class", "server_side_encryption", "kms_key_id",
                "object_lock"
            ]
            where rs.node(k) != nil {
                r.report(line: rs.line(k), "\(rs.path).\(k) applies to type: s3 only (this repository is type: local)")
            }
            if rs.require("path", "the folder that holds the repository"), let p = rs.string("path") {
                if !p.hasPrefix("/") {
                    r.report(line: rs.line("path"), "\(rs.path).path must be an absolute path, not \"\(p)\"")
                }
                repository = .local(path: p)
            }
        } else {
            if rs.node("path") != nil {
                r.report(
                    line: rs.line("path"),
                    "\(rs.path).path applies to type: local only (use bucket and prefix for s3)")
            }
            repository = loadS3(rs, r, &overrides).map { .s3($0) }
        }
        return (repository, loadEncryption(rs, r))
    }

    /// `limits`: parallelism, part and bundle sizes, timeouts, retries, prefetch.
    private func loadLimits(_ top: YAMLReader.Section?, _ r: YAMLReader) -> Configuration.Limits {
        let l = top?.section(
            "limits",
            allowed: [
                "parallelism", "part_size", "connect_timeout", "io_timeout", "request_timeout", "retries",
                "bundle_size", "prefetch"
            ])
        var limits = Configuration.Limits(
            parallelism: l?.int("parallelism", range: 1...64) ?? 4,
            partSize: l?.size("part_size", min: 5 << 20) ?? 8 << 20,
            connectTimeout: l?.duration("connect_timeout") ?? 10,
            ioTimeout: l?.duration("io_timeout") ?? 30,
            requestTimeout: l?.duration("request_timeout") ?? 300,
            retries: l?.int("retries", range: 0...50) ?? 6,
            bundleSize: l?.size("bundle_size", min: 1 << 20) ?? 64 << 20,
            prefetch: l?.int("prefetch", range: 0...256) ?? 16)
        if limits.partSize > 5 << 30 {
            r.report(line: l?.line("part_size"), "limits.part_size must be at most 5GiB (S3's part limit)")
            limits.partSize = 8 << 20
        }
        if limits.requestTimeout < limits.connectTimeout {
            r.report(
                line: l?.line("request_timeout"),
                "limits.request_timeout must not be shorter than limits.connect_timeout")
        }
        return limits
    }

    /// `retention`: a policy file (relative to this file) or the keys inline; and where it came from.
    private func loadRetention(
        _ top: YAMLReader.Section?, _ r: YAMLReader, file: String
    ) throws -> (RetentionPolicy, String) {
        guard let node = top?.node("retention") else { return (RetentionPolicy(), "defaults") }
        if let rel = node.scalar?.string {
            let path = resolve(rel, relativeTo: file)
            guard let retention = try policyFile(node, r, { try PolicyLoader.retention(file: path) }) else {
                return (RetentionPolicy(), "defaults")
            }
            return (retention, path)
        }
        return (
            PolicyLoader.retention(section: top?.section("retention", allowed: PolicyLoader.retentionKeys), reader: r),
            "\(file) (inline)"
        )
    }

    /// `drills`: a policy file (relative to this file) or the keys inline.
    private func loadDrills(_ top: YAMLReader.Section?, _ r: YAMLReader, file: String) throws -> DrillPolicy {
        guard let node = top?.node("drills") else { return DrillPolicy() }
        if let rel = node.scalar?.string {
            return try policyFile(node, r, { try PolicyLoader.drills(file: resolve(rel, relativeTo: file)) })
                ?? DrillPolicy()
        }
        return PolicyLoader.drills(section: top?.section("drills", allowed: PolicyLoader.drillKeys), reader: r)
    }

    /// `schedule`: the schedule policy file (relative to this file), and its path.
    private func loadSchedule(
        _ top: YAMLReader.Section?, _ r: YAMLReader, file: String
    ) throws -> (String?, SchedulePolicy?) {
        guard let node = top?.node("schedule") else { return (nil, nil) }
        guard let rel = node.scalar?.string else {
            r.report(node, "schedule must name the schedule policy file, e.g. schedule: policies/schedule.yaml")
            return (nil, nil)
        }
        let path = resolve(rel, relativeTo: file)
        guard let schedule = try policyFile(node, r, { try PolicyLoader.schedule(file: path) }) else {
            return (nil, nil)
        }
        return (path, schedule)
    }

    /// Loads the policy file `node` names; its problems are reported (at `node`'s line when they have none) and
    /// give nil.
    private func policyFile<T>(_ node: Node, _ r: YAMLReader, _ load: () throws -> T) throws -> T? {
        do {
            return try load()
        } catch let e as ConfigError {
            for p in e.problems { r.report(line: p.line == nil ? node.mark?.line : nil, p.description) }
            return nil
        }
    }

    /// A backup may run for its max_run_time: expire must not take its objects for an interrupted backup's.
    private func checkOrphanSafetyAge(
        _ retention: RetentionPolicy, _ schedule: SchedulePolicy?, _ top: YAMLReader.Section?, _ r: YAMLReader
    ) {
        if let b = schedule?.jobs.filter({ $0.name.hasPrefix("backup") }).max(by: { $0.maxRunTime < $1.maxRunTime }),
            b.maxRunTime > retention.orphanSafetyAge
        {
            r.report(
                line: (top?.node("retention") ?? top?.node("schedule"))?.mark?.line,
                "retention orphan_safety_age (\(Units.formatDuration(retention.orphanSafetyAge))) is shorter than jobs.\(b.name).max_run_time (\(Units.formatDuration(b.maxRunTime))) of the schedule: expire could delete a backup that is still running"
            )
        }
    }

    /// `metrics.listen`: the HOST:PORT the daemon's metrics endpoint listens on.
    private func loadMetricsListen(_ top: YAMLReader.Section?, _ r: YAMLReader) -> String {
        let m = top?.section("metrics", allowed: ["listen"])
        let listen = m?.string("listen") ?? "127.0.0.1:9187"
        if MetricsAddress.parse(listen) == nil {
            r.report(
                line: m?.line("listen"),
                "metrics.listen must be HOST:PORT with an IPv4 address, e.g. 127.0.0.1:9187, not \"\(listen)\"")
        }
        return listen
    }

    private func loadS3(_ rs: YAMLReader.Section, _ r: YAMLReader, _ overrides: inout [String]) -> Configuration.S3Repo?
    {
        let bucket = rs.string("bucket")
        if bucket == nil { _ = rs.require("bucket", "the S3 bucket name") }
        if let b = bucket, !ConfigLoader.validBucket(b) {
            r.report(
                line: rs.line("bucket"),
                "\(rs.path).bucket \"\(b)\" is not a valid bucket name (3–63 characters: lowercase letters, digits, dots, hyphens)"
            )
        }
        let (endpoint, regionValue) = loadS3Endpoint(rs, r, &overrides)
        let style = rs.choice("uri_style", ["host", "path"]).flatMap(S3Settings.URIStyle.init(rawValue:)) ?? .host
        let sse = rs.choice("server_side_encryption", ["AES256", "aws:kms"])
        let kms = rs.string("kms_key_id")
        if kms != nil && sse != "aws:kms" {
            r.report(line: rs.line("kms_key_id"), "\(rs.path).kms_key_id needs server_side_encryption: aws:kms")
        }
        let ca = rs.string("ca_file")
        if let ca, !FileManager.default.isReadableFile(atPath: ca) {
            r.report(line: rs.line("ca_file"), "\(rs.path).ca_file \(ca) does not exist or is not readable")
        }
        let credFile = rs.string("credentials_file")
        let prefix = rs.string("prefix") ?? ""
        if prefix.hasPrefix("/") || prefix.contains("//")
            || prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." })
        {
            r.report(
                line: rs.line("prefix"),
                "\(rs.path).prefix must be a relative path such as \"prod/db1\" (no leading /, no . or .. segments)")
        }
        let storageClass = rs.string("storage_class")
        if let sc = storageClass, !sc.allSatisfy({ $0.isUppercase || $0 == "_" || $0.isNumber }) {
            r.report(
                line: rs.line("storage_class"),
                "\(rs.path).storage_class must be an S3 storage class such as STANDARD_IA, not \"\(sc)\"")
        }
        let lock = loadObjectLock(rs, r)
        guard let bucket, let endpoint else { return nil }
        return Configuration.S3Repo(
            bucket: bucket, prefix: prefix, endpoint: endpoint, region: regionValue,
            uriStyle: style, caFile: ca, verifyTLS: rs.bool("verify_tls") ?? true,
            storageClass: storageClass, serverSideEncryption: sse, kmsKeyId: kms,
            credentialsFile: credFile, profile: rs.string("profile") ?? "default", objectLock: lock)
    }

    /// `repository.object_lock`: `mode` (governance or compliance, required), `margin` (default 7d, at least 1d
    /// unless `test_short_periods: true`).
    private func loadObjectLock(_ rs: YAMLReader.Section, _ r: YAMLReader) -> Configuration.ObjectLockSetting? {
        guard let l = rs.section("object_lock", allowed: ["mode", "margin", "test_short_periods"]) else { return nil }
        guard l.require("mode", "governance or compliance (see S3 Object Lock)") else { return nil }
        let mode = l.choice("mode", ["governance", "compliance"]).flatMap {
            S3ObjectLock.Mode(rawValue: $0.uppercased())
        }
        let short = l.bool("test_short_periods") ?? false
        let margin = l.duration("margin") ?? 7 * 86400
        if margin < ObjectLockPolicy.minimumMargin && !short {
            r.report(
                line: l.line("margin"),
                "\(l.path).margin must be at least 1d, not \(Units.formatDuration(margin)): a lock that ends before a late expire or a backup kept as the window's anchor leaves them unprotected"
            )
            return nil
        }
        return mode.map { Configuration.ObjectLockSetting(mode: $0, margin: margin, testShortPeriods: short) }
    }

    /// `repository.endpoint` and `repository.region`, each overridden by the AWS variables (named in `overrides`);
    /// the endpoint defaults to AWS's for the region. A malformed endpoint is reported, and nil.
    private func loadS3Endpoint(
        _ rs: YAMLReader.Section, _ r: YAMLReader, _ overrides: inout [String]
    ) -> (URL?, String) {
        var endpointText = rs.string("endpoint")
        if let e = environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"], !e.isEmpty {
            endpointText = e
            overrides.append(environment["AWS_ENDPOINT_URL_S3"] != nil ? "AWS_ENDPOINT_URL_S3" : "AWS_ENDPOINT_URL")
        }
        var region = rs.string("region")
        if let e = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"], !e.isEmpty {
            region = e
            overrides.append(environment["AWS_REGION"] != nil ? "AWS_REGION" : "AWS_DEFAULT_REGION")
        }
        let regionValue = region ?? "us-east-1"
        let endpoint: URL?
        if let text = endpointText {
            let u = URL(string: text)
            if let u, let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil,
                u.path.isEmpty || u.path == "/",
                u.query == nil, u.user == nil
            {
                endpoint = u
            } else {
                r.report(
                    line: rs.line("endpoint"),
                    "\(rs.path).endpoint must be an http:// or https:// URL with a host and optional port, and no path (got \"\(text)\")"
                )
                endpoint = nil
            }
        } else {
            endpoint = URL(string: "https://s3.\(regionValue).amazonaws.com")
        }
        return (endpoint, regionValue)
    }

    /// `repository.encryption`: exactly one of `key_file` (an absolute path) or `key_env` (a variable name).
    private func loadEncryption(_ rs: YAMLReader.Section, _ r: YAMLReader) -> Configuration.EncryptionKey? {
        guard let e = rs.section("encryption", allowed: ["key_file", "key_env"]) else { return nil }
        let file = e.string("key_file"), env = e.string("key_env")
        switch (file, env) {
        case (let f?, nil):
            guard f.hasPrefix("/") else {
                r.report(
                    line: e.line("key_file"), "\(e.path).key_file must be an absolute path, not \"\(f)\"")
                return nil
            }
            return .file(f)
        case (nil, let v?):
            guard !v.isEmpty, v.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }),
                !v.first!.isNumber
            else {
                r.report(
                    line: e.line("key_env"),
                    "\(e.path).key_env must name an environment variable (letters, digits, _), not \"\(v)\""
                )
                return nil
            }
            return .environment(v)
        case (.some, .some):
            r.report(line: e.line("key_env"), "\(e.path) takes key_file or key_env, not both")
        case (nil, nil):
            r.report(
                e.node,
                "\(e.path) needs key_file (a file with the master key) or key_env (a variable holding it); create a key with `cairn key generate --output FILE`"
            )
        }
        return nil
    }

    /// A path in a configuration file, relative to that file.
    func resolve(_ path: String, relativeTo file: String) -> String {
        path.hasPrefix("/")
            ? path : ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
    }

    static func validBucket(_ b: String) -> Bool {
        guard (3...63).contains(b.count), let f = b.first, let l = b.last,
            f.isLetter || f.isNumber, l.isLetter || l.isNumber
        else { return false }
        return b.allSatisfy { ($0.isLowercase && $0.isASCII) || ($0.isNumber && $0.isASCII) || $0 == "." || $0 == "-" }
    }
}
