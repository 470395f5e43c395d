import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import Testing

/// The doctor's judgement over gathered facts: each misconfiguration is a finding with its fix, a healthy setup
/// passes, and the exit code follows the worst finding.
@Suite struct DoctorTests {
    static let now = Date(timeIntervalSince1970: 1_795_000_000)

    static func healthy() -> DoctorFacts {
        var f = DoctorFacts()
        f.settings = .init(
            walLevel: "replica", archiveMode: "on",
            archiveCommand: "/usr/bin/cairn --config /etc/cairn/cairn.yaml wal-push %p",
            archiveTimeout: 60)
        f.archiver = .init(
            archivedCount: 500, lastArchivedTime: now.addingTimeInterval(-30), failedCount: 2,
            lastFailedWAL: "000000010000000000000003", lastFailedTime: now.addingTimeInterval(-10 * 86400))
        f.readyWALFiles = 0
        f.serverSkew = 0.2
        f.repositoryLocation = "s3://backups/prod"
        f.transport = .tls
        f.repositorySkew = 1
        f.retentionSource = "policies/retention.yaml"
        f.expectedFullInterval = 86400
        f.catalog = .init(
            newestFull: now.addingTimeInterval(-5 * 3600), oldestBackup: now.addingTimeInterval(-40 * 86400),
            windowStart: now.addingTimeInterval(-31 * 86400), windowEnd: now.addingTimeInterval(-40),
            lastDrill: (now.addingTimeInterval(-2 * 86400), true, nil),
            lastPassingDrill: now.addingTimeInterval(-2 * 86400))
        return f
    }

    static func finding(_ findings: [Doctor.Finding], _ check: String) -> Doctor.Finding? {
        findings.first { $0.check == check }
    }

    @Test func aHealthySetupPasses() {
        let findings = Doctor.evaluate(Self.healthy(), now: Self.now)
        #expect(Doctor.worst(findings) == .ok, "\(findings.filter { $0.severity != .ok })")
        for check in [
            "wal_level", "archive_mode", "archive_command", "archive_timeout", "archiver", "archive_backlog",
            "repository",
            "tls", "clock_skew", "newest_full_backup", "drill", "retention", "window"
        ] {
            #expect(Self.finding(findings, check) != nil, "check \(check) is reported")
        }
        #expect(Doctor.worst(findings).exitCode == 0)
    }

    @Test func aMisconfiguredClusterGetsEachProblemWithItsFix() {
        var f = Self.healthy()
        f.settings = .init(walLevel: "minimal", archiveMode: "off", archiveCommand: "(disabled)", archiveTimeout: 0)
        f.catalog = .init(
            newestFull: nil, oldestBackup: nil, windowStart: nil, windowEnd: nil, lastDrill: nil, lastPassingDrill: nil)
        f.retentionSource = "defaults"
        let findings = Doctor.evaluate(f, now: Self.now)
        let expected: [(String, Doctor.Severity, String)] = [
            ("wal_level", .critical, "wal_level = replica"), ("archive_mode", .critical, "archive_mode = on"),
            ("archive_command", .critical, "wal-push %p"), ("archive_timeout", .warning, "archive_timeout = '60s'"),
            ("newest_full_backup", .critical, "cairn backup"), ("drill", .warning, "cairn drill"),
            ("retention", .info, "retention:")
        ]
        for (check, severity, fix) in expected {
            let x = Self.finding(findings, check)
            #expect(x?.severity == severity, "\(check): \(String(describing: x))")
            #expect(x?.fix?.contains(fix) == true, "\(check) fix: \(String(describing: x?.fix))")
        }
        #expect(Doctor.worst(findings).exitCode == 2)
    }

    @Test func inlineCredentialsInArchiveCommandAreRedactedAndWarnedAbout() throws {
        var f = Self.healthy()
        f.settings?.archiveCommand =
            "env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI PGPASSWORD=hunter2 /usr/bin/cairn --config /etc/cairn/cairn.yaml wal-push %p"
        var findings = Doctor.evaluate(f, now: Self.now)
        let json = String(decoding: try JSONEncoder().encode(findings), as: UTF8.self)
        for secret in ["wJalrXUtnFEMI", "hunter2"] { #expect(!json.contains(secret), "doctor echoes \(secret)") }
        #expect(
            Self.finding(findings, "archive_command")?.explanation.contains("AWS_SECRET_ACCESS_KEY=<redacted>") == true)
        let warning = try #require(Self.finding(findings, "archive_command_credentials"))
        #expect(warning.severity == .warning)
        #expect(
            warning.explanation.contains("AWS_SECRET_ACCESS_KEY, PGPASSWORD")
                && warning.explanation.contains("every database user"))
        #expect(warning.fix?.contains("credentials_file") == true)
        // Not cairn's command: the critical finding quotes it, redacted.
        f.settings?.archiveCommand = "aws --endpoint-url https://minio:minio123@s3.local s3 cp %p s3://b/%f"
        findings = Doctor.evaluate(f, now: Self.now)
        #expect(
            Self.finding(findings, "archive_command")?.explanation.contains("https://minio:<redacted>@s3.local") == true
        )
        #expect(!String(decoding: try JSONEncoder().encode(findings), as: UTF8.self).contains("minio123"))
        #expect(Self.finding(Doctor.evaluate(Self.healthy(), now: Self.now), "archive_command_credentials") == nil)
    }

    @Test func archivingFailuresBacklogAndStaleness() {
        var f = Self.healthy()
        f.archiver = .init(
            archivedCount: 10, lastArchivedTime: Self.now.addingTimeInterval(-3600), failedCount: 40,
            lastFailedWAL: "00000001000000000000002A", lastFailedTime: Self.now.addingTimeInterval(-20))
        f.readyWALFiles = 40
        f.catalog?.windowEnd = Self.now.addingTimeInterval(-3600)
        f.catalog?.newestFull = Self.now.addingTimeInterval(-3 * 86400)
        f.catalog?.lastDrill = (Self.now.addingTimeInterval(-3600), false, "pg_amcheck")
        let findings = Doctor.evaluate(f, now: Self.now)
        #expect(Self.finding(findings, "archiver")?.severity == .critical)
        #expect(Self.finding(findings, "archiver")?.explanation.contains("00000001000000000000002A") == true)
        #expect(Self.finding(findings, "archive_backlog")?.severity == .warning)
        #expect(Self.finding(findings, "window_end")?.severity == .warning)
        #expect(Self.finding(findings, "newest_full_backup")?.severity == .warning)
        #expect(Self.finding(findings, "drill")?.severity == .critical)
        #expect(Self.finding(findings, "drill")?.explanation.contains("pg_amcheck") == true)
        // Recovered a while ago: a warning within a day, nothing after.
        f = Self.healthy()
        f.archiver?.lastFailedTime = Self.now.addingTimeInterval(-3600)
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "archiver")?.severity == .warning)
    }

    @Test(arguments: [(0.0, Doctor.Severity.ok), (45, .warning), (-45, .warning), (400, .critical), (-1000, .critical)])
    func clockSkew(skew: Double, severity: Doctor.Severity) {
        var f = Self.healthy()
        f.repositorySkew = skew
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "clock_skew")?.severity == severity)
    }

    @Test func transportAndWindowCoverage() {
        var f = Self.healthy()
        f.transport = .plainHTTP(host: "minio.internal")
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "tls")?.severity == .critical)
        f.transport = .plainHTTP(host: "127.0.0.1")
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "tls")?.severity == .info)
        f.transport = .local
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "off_site")?.severity == .warning)
        // A young repository does not cover the window yet: information, not a problem.
        f = Self.healthy()
        f.catalog?.oldestBackup = Self.now.addingTimeInterval(-3 * 86400)
        f.catalog?.windowStart = Self.now.addingTimeInterval(-3 * 86400)
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "window")?.severity == .info)
        // Old backups exist but the window starts late: something is missing.
        f.catalog?.oldestBackup = Self.now.addingTimeInterval(-60 * 86400)
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "window")?.severity == .warning)
        // A promotion whose history file never reached the repository.
        f = Self.healthy()
        f.timeline = 2
        #expect(
            Self.finding(Doctor.evaluate(f, now: Self.now), "timeline_history")?.fix
                == "cairn wal-push $PGDATA/pg_wal/00000002.history")
        f.catalog?.historyTimelines = [2]
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "timeline_history") == nil)
        // Unreachable parts are reported, not guessed.
        f = DoctorFacts()
        f.clusterError = "connection refused"
        f.repositoryError = "bucket missing"
        let findings = Doctor.evaluate(f, now: Self.now)
        #expect(findings.map(\.check) == ["cluster", "repository"])
        #expect(findings.allSatisfy { $0.severity == .critical && $0.fix != nil })
    }

    @Test func aStoreThatReplacesCreateOnlyWritesIsCritical() {
        var f = Self.healthy()
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "create_only")?.severity == .ok)
        f.createOnlyError = "s3://backups/prod replaced an existing object on a create-only write"
        let x = Self.finding(Doctor.evaluate(f, now: Self.now), "create_only")
        #expect(x?.severity == .critical)
        #expect(x?.fix?.contains("If-None-Match") == true)
    }

    /// Object Lock as configured against what the bucket has.
    @Test func objectLockIsCheckedAgainstTheBucket() {
        var f = Self.healthy()
        f.objectLock = ObjectLockFacts(mode: nil)
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "object_lock")?.severity == .info)
        f.objectLock = ObjectLockFacts(mode: "GOVERNANCE", period: 37 * 86400)
        f.objectLock?.bucket = S3BucketProtection(objectLockEnabled: false, versioning: nil)
        let missing = Self.finding(Doctor.evaluate(f, now: Self.now), "object_lock")
        #expect(missing?.severity == .critical)
        #expect(missing?.explanation.contains("Object Lock not enabled, versioning never enabled") == true)
        #expect(missing?.fix?.contains("put-object-lock-configuration") == true)
        f.objectLock?.bucket = S3BucketProtection(objectLockEnabled: true, versioning: "Suspended")
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "object_lock")?.severity == .critical)
        f.objectLock?.bucket = S3BucketProtection(objectLockEnabled: true, versioning: "Enabled")
        let ok = Self.finding(Doctor.evaluate(f, now: Self.now), "object_lock")
        #expect(
            ok?.severity == .ok && ok?.explanation.contains("governance) for 37d00h") == true,
            "\(String(describing: ok))")
        f.objectLock?.bucket?.defaultRetention = "GOVERNANCE 30 days"
        f.objectLock?.testShortPeriods = true
        let findings = Doctor.evaluate(f, now: Self.now)
        #expect(Self.finding(findings, "object_lock_default")?.severity == .warning)
        #expect(Self.finding(findings, "object_lock_short")?.severity == .warning)
        f.objectLock?.bucket = nil
        f.objectLock?.error = "GET s3://backups/prod?object-lock: access denied"
        #expect(Self.finding(Doctor.evaluate(f, now: Self.now), "object_lock")?.severity == .warning)
    }

    /// Production's history: the live cluster's timeline against the repository's records.
    @Test func theLiveTimelineIsCheckedAgainstProductionsHistory() {
        var wal = WALArchive(segmentSize: 16 << 20)
        wal.histories[2] = [TimelineSwitch(parent: 1, switchPoint: LSN(5 << 24))]
        wal.histories[3] = [TimelineSwitch(parent: 1, switchPoint: LSN(6 << 24))]
        let record = { (t: UInt32, v: TimelineRecord.Verdict) in
            TimelineRecord(timeline: t, verdict: v, decidedBy: "test", reason: "test", at: Self.now)
        }
        func lineageFinding(_ records: [UInt32: TimelineRecord], live: UInt32) -> [Doctor.Finding] {
            var f = Self.healthy()
            f.timeline = live
            f.catalog?.lineage = Lineage(wal: wal, records: records, backupTimelines: [1])
            return Doctor.evaluate(f, now: Self.now).filter { $0.check.hasPrefix("lineage") }
        }
        let decided: [UInt32: TimelineRecord] = [2: record(2, .copy), 3: record(3, .production)]
        #expect(lineageFinding(decided, live: 3).map(\.severity) == [.ok])
        let onCopy = lineageFinding(decided, live: 2)
        #expect(onCopy.first?.severity == .critical)
        #expect(onCopy.first?.fix?.contains("cairn timeline adopt 2") == true)
        // Timeline 3 undecided: the live cluster on it is a warning; on timeline 1 the ambiguity is named.
        let undecided = lineageFinding([2: record(2, .copy)], live: 3)
        #expect(undecided.map(\.severity) == [.warning])
        #expect(undecided.first?.explanation.contains("not yet recorded as production's") == true)
        let ambiguous = lineageFinding([2: record(2, .copy)], live: 1)
        #expect(ambiguous.map(\.check) == ["lineage", "lineage_ambiguous"])
        #expect(ambiguous.last?.severity == .warning)
    }

    @Test func dataChecksumsOffIsAWarningThatSaysWhyAndHow() {
        var f = Self.healthy()
        f.server = .init(versionNum: 150018, dataChecksums: false, summarizeWAL: nil)
        let findings = Doctor.evaluate(f, now: Self.now)
        let x = Self.finding(findings, "data_checksums")
        #expect(x?.severity == .warning)
        #expect(
            x?.explanation.contains("not detected") == true && x?.explanation.contains("backups") == true
                && x?.explanation.contains("drills") == true, "\(String(describing: x))")
        #expect(
            x?.fix?.contains("pg_checksums --enable") == true && x?.fix?.contains("initdb --data-checksums") == true)
        #expect(Self.finding(findings, "summarize_wal") == nil, "15 has no summarize_wal")
        #expect(Self.finding(findings, "postgres_version")?.severity == .ok)
        #expect(Self.finding(findings, "postgres_version")?.explanation.hasPrefix("PostgreSQL 15.18:") == true)
        #expect(Doctor.worst(findings) == .warning)
        f.server?.dataChecksums = true
        #expect(Doctor.worst(Doctor.evaluate(f, now: Self.now)) == .ok)
    }

    @Test func onPostgreSQL17AndLaterSummarizeWalIsRecommended() {
        var f = Self.healthy()
        f.server = .init(versionNum: 180006, dataChecksums: true, summarizeWAL: false)
        var findings = Doctor.evaluate(f, now: Self.now)
        let x = Self.finding(findings, "summarize_wal")
        #expect(x?.severity == .info)
        #expect(x?.explanation.contains("incremental") == true)
        #expect(x?.fix == "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();")
        #expect(Self.finding(findings, "data_checksums")?.severity == .ok)
        #expect(Self.finding(findings, "postgres_version")?.explanation.hasPrefix("PostgreSQL 18.6:") == true)
        #expect(Doctor.worst(findings).exitCode == 0, "a recommendation, not a problem")
        f.server?.summarizeWAL = true
        findings = Doctor.evaluate(f, now: Self.now)
        #expect(Self.finding(findings, "summarize_wal")?.severity == .ok)
    }

    @Test(arguments: [
        (140010, Doctor.Severity.critical), (150018, .ok), (160004, .info), (170002, .info), (180006, .ok),
        (190001, .warning)
    ])
    func theServerVersionAgainstWhatIsTested(versionNum: Int, severity: Doctor.Severity) {
        var f = Self.healthy()
        f.server = .init(versionNum: versionNum, dataChecksums: true, summarizeWAL: versionNum >= 170000 ? true : nil)
        let x = Self.finding(Doctor.evaluate(f, now: Self.now), "postgres_version")
        #expect(x?.severity == severity, "\(versionNum): \(String(describing: x))")
        if severity != .ok { #expect(x?.fix != nil) }
    }
}
