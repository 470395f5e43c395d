import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

/// `cairn init`, `check` and `config` as a user runs them, against the real cluster and the S3 emulator.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct InitAndCheckTests {
    @Test func localRepositoryInitCheckAndRefuseAnotherCluster() throws {
        let dir = try TestEnvironment.tempDirectory("cli-local")
        let config = try TestCluster.localConfig(repo: dir + "/repo", in: dir)
        let check0 = try Run.cairn(["check", "--config", config])
        #expect(check0.status == ErrorCode.repoUninitialized.exitCode)
        #expect(check0.stdout.contains("cluster        ok"))
        #expect(
            check0.stderr.contains("HINT:") && check0.stderr.contains("cairn init"),
            "the failure and its fix, once: \(check0.stderr)")

        let i = try Run.cairn(["init", "--config", config])
        #expect(i.status == 0, "\(i.stderr)")
        #expect(i.stdout.contains("created repository"))
        let again = try Run.cairn(["init", "--config", config, "--json"])
        #expect(again.status == 0)
        #expect(again.stdout.contains("\"outcome\" : \"existing\""))

        let check = try Run.cairn(["check", "--config", config])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("repository     ok"))

        // A repository created for another cluster (another system identifier): init and check refuse it.
        let foreignDir = try TestEnvironment.tempDirectory("foreign")
        _ = try InitOperation.run(
            repo: LocalRepository(root: foreignDir + "/repo"),
            cluster: ClusterInfo(
                systemIdentifier: "7000000000000000042", versionNum: 150018,
                walSegmentSize: 16 << 20, dataDirectory: nil),
            clock: SystemClock())
        let foreignConfig = try TestCluster.localConfig(repo: foreignDir + "/repo", in: foreignDir)
        let refused = try Run.cairn(["init", "--config", foreignConfig])
        #expect(refused.status == ErrorCode.repoForeign.exitCode)
        #expect(refused.stderr.contains("belongs to cluster"))
        #expect(refused.stderr.contains("[repo.foreign]"))
        #expect(refused.stderr.contains("HINT:"))
        let checkForeign = try Run.cairn(["check", "--config", foreignConfig])
        #expect(checkForeign.status == ErrorCode.repoForeign.exitCode)
    }

    @Test func s3RepositoryInitAndCheck() throws {
        let dir = try TestEnvironment.tempDirectory("cli-s3")
        let config = try TestCluster.s3Config(prefix: TestEnvironment.uniqueName("cli"), in: dir, tls: true)
        let i = try Run.cairn(["init", "--config", config])
        #expect(i.status == 0, "\(i.stderr)")
        let check = try Run.cairn(["check", "--config", config, "--json"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("\"ok\" : true"))
    }

    @Test func wrongSecretGivesTheDocumentedError() throws {
        let dir = try TestEnvironment.tempDirectory("cli-badsecret")
        let config = try TestCluster.s3Config(prefix: "bad", in: dir, secret: "wrong-secret-value")
        let r = try Run.cairn(["init", "--config", config])
        #expect(r.status == ErrorCode.repoAuth.exitCode)
        #expect(r.stderr.contains("SignatureDoesNotMatch"))
        #expect(r.stderr.contains("[repo.auth]"))
        #expect(r.stderr.contains("HINT:") && r.stderr.contains("credentials file"))
        #expect(!r.stderr.contains("wrong-secret-value"))
        #expect(r.stderr.split(separator: "\n").count == 2, "one message line and one hint line")
    }

    @Test func missingBucketUnreachableEndpointAndNotWritablePath() throws {
        let dir = try TestEnvironment.tempDirectory("cli-errors")
        let nobucket = try TestCluster.s3Config(prefix: "x", in: dir, bucket: "no-such-bucket")
        let r1 = try Run.cairn(["init", "--config", nobucket])
        #expect(r1.status == ErrorCode.repoBucketMissing.exitCode)
        #expect(r1.stderr.contains("[repo.bucket-missing]"))

        let unreachable = try TestCluster.s3Config(prefix: "x", in: dir)
        let text = try String(contentsOfFile: unreachable, encoding: .utf8)
            .replacingOccurrences(of: TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT"), with: "http://127.0.0.1:9")
            .replacingOccurrences(of: "retries: 3", with: "retries: 1")
        try text.write(toFile: unreachable, atomically: true, encoding: .utf8)
        let r2 = try Run.cairn(["init", "--config", unreachable])
        #expect(r2.status == ErrorCode.repoUnreachable.exitCode)
        #expect(r2.stderr.contains("[repo.unreachable]"))

        // A local path the cairn user cannot write: run as postgres against a root-owned folder.
        let ro = try TestEnvironment.tempDirectory("cli-ro")
        try Run.shell("chmod 755 \(ro) && mkdir -p \(ro)/repo && chmod 555 \(ro)/repo")
        let roConfig = try TestCluster.localConfig(repo: ro + "/repo", in: ro)
        try Run.shell("chmod 644 \(roConfig)")
        let r3 = try Run.shell("runuser -u postgres -- \(Run.cairnBinary) init --config \(roConfig)", check: false)
        #expect(r3.status == ErrorCode.repoAccessDenied.exitCode, "\(r3.stderr)")
        #expect(r3.stderr.contains("[repo.access-denied]"))
        #expect(r3.stderr.contains("HINT: make \(ro)/repo writable"))
    }

    @Test func postgresNotReachable() throws {
        let dir = try TestEnvironment.tempDirectory("cli-nopg")
        let config = try TestCluster.localConfig(repo: dir + "/repo", in: dir)
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "port=\(TestEnvironment.value("CAIRN_TEST_PGPORT"))", with: "port=9")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let r = try Run.cairn(["init", "--config", config])
        #expect(r.status == ErrorCode.pgUnreachable.exitCode)
        #expect(r.stderr.contains("[pg.unreachable]"))
        #expect(r.stderr.contains("HINT:"))
    }

    @Test func malformedConfigIsReportedWithLines() throws {
        let dir = try TestEnvironment.tempDirectory("cli-badyaml")
        let path = dir + "/cairn.yaml"
        try "repository:\n  type: s3\n  bucket: ok-bucket\n  uri_style: sideways\nlimits:\n  parallelism: 0\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let r = try Run.cairn(["config", "validate", path])
        #expect(r.status == ErrorCode.configInvalid.exitCode)
        #expect(r.stderr.contains("\(path):4: repository.uri_style"))
        #expect(r.stderr.contains("\(path):6: limits.parallelism"))
        try "cluster:\n  connection: \"host=/tmp\"\nrepository:\n  type: local\n  path: \(dir)/repo\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let ok = try Run.cairn(["config", "validate", path, "--json"])
        #expect(ok.status == 0 && ok.stdout.contains("\"ok\" : true"), "\(ok.stdout)\(ok.stderr)")
        let none = try Run.cairn(["check"], cwd: dir + "/..")
        #expect(none.status == ErrorCode.configMissing.exitCode)
    }

    @Test func checkPrintsAConfigurationErrorOnce() throws {
        let dir = try TestEnvironment.tempDirectory("cli-check-once")
        let path = dir + "/cairn.yaml"
        try "repository:\n  type: local\n  path: \(dir)/repo\nlimits:\n  paralelism: 2\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let r = try Run.cairn(["check", "--config", path])
        #expect(r.status == ErrorCode.configInvalid.exitCode)
        let all = r.stdout + r.stderr
        #expect(
            all.components(separatedBy: "unknown key \"paralelism\"").count == 2, "said once:\n\(r.stdout)\(r.stderr)")
        #expect(r.stderr.hasPrefix("cairn: error: "), "\(r.stderr)")
        #expect(r.stdout.contains("configuration  FAIL see the error below [config.invalid]"), "\(r.stdout)")
    }

    @Test func configShowRedactsSecretsAndNamesOverrides() throws {
        let dir = try TestEnvironment.tempDirectory("cli-show")
        let config = try TestCluster.s3Config(prefix: "p", in: dir)
        let secret = TestEnvironment.value("CAIRN_TEST_S3_SECRET_KEY")
        let r = try Run.cairn(
            ["config", "show", "--config", config],
            environment: [
                "AWS_REGION": "eu-central-1", "AWS_SECRET_ACCESS_KEY": "envsecret-xyz",
                "AWS_ACCESS_KEY_ID": "AKIAFROMENVIRONMENT1"
            ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("region: eu-central-1"))
        #expect(r.stdout.contains("AWS_REGION"))
        #expect(r.stdout.contains("secret_access_key: <redacted>"))
        #expect(!r.stdout.contains("envsecret-xyz") && !r.stdout.contains(secret))
        #expect(!r.stdout.contains("AKIAFROMENVIRONMENT1"))
    }
}

/// Issue #25: `init` and `check` prove the store refuses a create-only write over an existing object.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct CreateOnlyProbeTests {
    @Test(arguments: RepoKind.standard)
    func checkProvesCreateOnlyWrites(repo: RepoKind) throws {
        let dir = try TestEnvironment.tempDirectory("cli-createonly-\(repo)")
        let config =
            repo == .local
            ? try TestCluster.localConfig(repo: dir + "/repo", in: dir)
            : try TestCluster.s3Config(prefix: TestEnvironment.uniqueName("createonly"), in: dir, tls: true)
        #expect(try Run.cairn(["init", "--config", config]).status == 0)
        let check = try Run.cairn(["check", "--config", config])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("create-only    ok"), "\(check.stdout)")
    }

    /// A store that acknowledges a create-only write over an existing object (the fault proxy answers its 412
    /// with 200: If-None-Match is signed, so the proxy cannot strip it): `init` refuses, `check` fails the line.
    @Test func aStoreThatIgnoresIfNoneMatchIsRefused() throws {
        let proxy = try FaultProxy()
        let dir = try TestEnvironment.tempDirectory("cli-createonly-proxy")
        let config = try TestCluster.s3Config(prefix: TestEnvironment.uniqueName("createonly"), in: dir)
        try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(
                of: TestEnvironment.value("CAIRN_TEST_S3_ENDPOINT"), with: proxy.endpoint.absoluteString
            )
            .write(toFile: config, atomically: true, encoding: .utf8)
        try proxy.script(
            #"{"match": {"method": "PUT", "path_regex": "/probe/create-only-"}, "times": -1, "action": {"ignore_if_none_match": true}}"#
        )
        let refused = try Run.cairn(["init", "--config", config])
        #expect(refused.status == ErrorCode.repoCreateOnlyUnsupported.exitCode, "\(refused.stderr)")
        #expect(
            refused.stderr.contains("[repo.create-only-unsupported]") && refused.stderr.contains("HINT:"),
            "\(refused.stderr)")
        #expect(
            try proxy.log().contains { ($0["status_sent"] as? Int) == 200 && ($0["upstream_status"] as? Int) == 412 })
        let check = try Run.cairn(["check", "--config", config])
        #expect(check.status == ErrorCode.repoUninitialized.exitCode, "init created nothing: \(check.stdout)")

        try proxy.reset()
        #expect(try Run.cairn(["init", "--config", config]).status == 0)
        try proxy.script(
            #"{"match": {"method": "PUT", "path_regex": "/probe/create-only-"}, "times": -1, "action": {"ignore_if_none_match": true}}"#
        )
        let failed = try Run.cairn(["check", "--config", config])
        #expect(failed.status == ErrorCode.repoCreateOnlyUnsupported.exitCode, "\(failed.stdout)\(failed.stderr)")
        #expect(
            failed.stdout.contains("repository     ok") && failed.stdout.contains("create-only    FAIL"),
            "\(failed.stdout)")
    }
}
