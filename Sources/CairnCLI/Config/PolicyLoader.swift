import CairnBase
import CairnCore
import Foundation
import Yams

/// Loads the policy files (`policies/*.yaml`), validating every key with file:line problems.
public enum PolicyLoader {
    static let retentionKeys = [
        "recovery_window", "min_full_backups", "logical_backups", "drill_records", "reports",
        "orphan_safety_age"
    ]

    static let drillKeys = [
        "backup", "target", "scratch_directory", "keep_scratch", "timeout", "checks", "assertions", "verification"
    ]

    /// Parses a drill policy from a file.
    public static func drills(file path: String) throws -> DrillPolicy {
        try load(
            path, name: "drill", example: "policies/drills.yaml", allowed: drillKeys, read: drills(section:reader:))
    }

    /// Parses a schedule policy from a file.
    public static func schedule(file path: String) throws -> SchedulePolicy {
        try load(
            path, name: "schedule", example: "policies/schedule.yaml", allowed: ["time_zone", "missed_runs", "jobs"],
            read: schedule(section:reader:))
    }

    /// Reads schedule keys: defaults (`time_zone`, `missed_runs`) and `jobs` by name.
    static func schedule(section s: YAMLReader.Section?, reader r: YAMLReader) -> SchedulePolicy {
        func zone(_ sec: YAMLReader.Section?, _ fallback: TimeZone) -> TimeZone {
            guard let name = sec?.string("time_zone") else { return fallback }
            guard let tz = TimeZone(identifier: name) else {
                r.report(
                    line: sec?.line("time_zone"),
                    "\(sec.map { $0.path.isEmpty ? "" : $0.path + "." } ?? "")time_zone \"\(name)\" is not a time zone name such as UTC or Europe/Berlin"
                )
                return fallback
            }
            return tz
        }
        let defaultZone = zone(s, TimeZone(identifier: "UTC")!)
        let defaultMissed =
            s?.choice("missed_runs", SchedulePolicy.MissedRuns.allCases.map(\.rawValue))
            .flatMap(SchedulePolicy.MissedRuns.init(rawValue:)) ?? .runOnce
        var jobs: [SchedulePolicy.Job] = []
        if let js = s?.section("jobs", allowed: SchedulePolicy.jobNames) {
            for name in SchedulePolicy.jobNames {
                guard let j = js.section(name, allowed: ["cron", "time_zone", "jitter", "max_run_time", "missed_runs"])
                else { continue }
                guard let text = j.string("cron") else {
                    _ = j.require("cron", "a 5-field cron expression or @daily"); continue
                }
                do {
                    let cron = try CronExpression(text)
                    jobs.append(
                        .init(
                            name: name, cron: cron, timeZone: zone(j, defaultZone), jitter: j.duration("jitter") ?? 0,
                            maxRunTime: j.duration("max_run_time") ?? 6 * 3600,
                            missed: j.choice("missed_runs", SchedulePolicy.MissedRuns.allCases.map(\.rawValue))
                                .flatMap(SchedulePolicy.MissedRuns.init(rawValue:)) ?? defaultMissed))
                } catch let e as CronExpression.ParseError {
                    r.report(line: j.line("cron"), "jobs.\(name).cron: \(e.description)")
                } catch {}
            }
        } else if s?.node("jobs") == nil {
            r.report(
                line: nil, "jobs is missing: name the jobs to run (\(SchedulePolicy.jobNames.joined(separator: ", ")))")
        }
        return SchedulePolicy(jobs: jobs)
    }

    /// Parses a retention policy from a file.
    public static func retention(file path: String) throws -> RetentionPolicy {
        try load(
            path, name: "retention", example: "policies/retention.yaml", allowed: retentionKeys,
            read: retention(section:reader:))
    }

    /// Reads a policy file: YAML syntax, known keys, then the policy's own checks; every problem with file:line.
    static func load<P>(
        _ path: String, name: String, example: String, allowed: [String],
        read: (YAMLReader.Section?, YAMLReader) -> P
    ) throws -> P {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(
                .policyInvalid,
                problems: [
                    ConfigProblem(file: path, line: nil, message: "\(name) policy file not found or not readable")
                ],
                hint:
                    "point \(name == "drill" ? "drills" : name): in cairn.yaml (or --policy) at a readable file, e.g. \(example)"
            )
        }
        let r = YAMLReader(file: path)
        guard let root = r.parse(String(decoding: data, as: UTF8.self)) else {
            throw ConfigError(.policyInvalid, problems: r.problems, hint: "fix the \(name) policy")
        }
        let policy = read(r.section(root, path: "", allowed: allowed), r)
        if !r.problems.isEmpty {
            throw ConfigError(.policyInvalid, problems: r.problems, hint: "fix the \(name) policy")
        }
        return policy
    }

    /// Reads drill keys from a mapping.
    static func drills(section s: YAMLReader.Section?, reader r: YAMLReader) -> DrillPolicy {
        var p = DrillPolicy()
        if let b = s?.choice("backup", DrillPolicy.BackupChoice.allCases.map(\.rawValue)) {
            p.backup = .init(rawValue: b)!
        }
        if let t = s?.choice("target", DrillPolicy.TargetChoice.allCases.map(\.rawValue)) {
            p.target = .init(rawValue: t)!
        }
        if let d = s?.string("scratch_directory") {
            if d.hasPrefix("/") {
                p.scratchDirectory = d
            } else {
                r.report(line: s?.line("scratch_directory"), "scratch_directory must be an absolute path")
            }
        }
        if let k = s?.bool("keep_scratch") { p.keepScratch = k }
        if let t = s?.duration("timeout") { p.timeout = t }
        if let c = s?.section("checks", allowed: ["pg_verifybackup", "pg_amcheck", "read_all_tables"]) {
            p.verifyBackup = c.bool("pg_verifybackup") ?? true
            p.amcheck = c.bool("pg_amcheck") ?? true
            p.readAllTables = c.bool("read_all_tables") ?? true
        }
        if let v = s?.section("verification", allowed: ["day_coverage", "drill_interval"]) {
            if let text = v.string("day_coverage") {
                let number = Double(
                    text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "%", with: "")
                        .trimmingCharacters(in: .whitespaces))
                if let number, (0...100).contains(number) {
                    p.verification.dayCoverage = number / 100
                } else {
                    r.report(
                        line: v.line("day_coverage"),
                        "verification.day_coverage must be a percentage between 0% and 100%, not \"\(text)\"")
                }
            }
            if let d = v.duration("drill_interval") { p.verification.drillInterval = d }
        }
        if let node = s?.node("assertions") {
            guard let seq = node.sequence else {
                r.report(node, "assertions must be a list of {name, database, sql}")
                return p
            }
            for (i, item) in seq.enumerated() {
                guard let a = r.section(item, path: "assertions[\(i)]", allowed: ["name", "database", "sql"]) else {
                    continue
                }
                let name = a.string("name"), sql = a.string("sql")
                if name == nil { _ = a.require("name") }
                if sql == nil { _ = a.require("sql", "a query that returns true when the data is right") }
                if let name, let sql {
                    p.assertions.append(.init(name: name, database: a.string("database") ?? "*", sql: sql))
                }
            }
        }
        return p
    }

    /// Reads retention keys from a mapping (a policy file's top level, or `retention:` inline in cairn.yaml).
    static func retention(section s: YAMLReader.Section?, reader r: YAMLReader) -> RetentionPolicy {
        let d = RetentionPolicy()
        let window = s?.duration("recovery_window") ?? d.recoveryWindow
        let minFull = s?.int("min_full_backups", range: 1...1000) ?? d.minFullBackups
        let logical = s?.duration("logical_backups") ?? d.logicalRetention
        let drills = s?.duration("drill_records") ?? d.drillRetention
        let reports = s?.duration("reports") ?? d.reportRetention
        let safety = s?.duration("orphan_safety_age") ?? d.orphanSafetyAge
        if let s, safety < 60 {
            r.report(
                line: s.line("orphan_safety_age"),
                "orphan_safety_age must be at least 1m: a running backup must never look like garbage")
        }
        return RetentionPolicy(
            recoveryWindow: window, minFullBackups: minFull, logicalRetention: logical,
            drillRetention: drills, reportRetention: reports, orphanSafetyAge: safety)
    }
}
