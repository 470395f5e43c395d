import CairnBase
import CairnCore
import Foundation
import Yams

/// Loads the policy files (`policies/*.yaml`), validating every key with file:line problems.
public enum PolicyLoader {
    static let retentionKeys = ["recovery_window", "min_full_backups", "logical_backups", "drill_records", "reports",
                                "orphan_safety_age"]

    /// Parses a retention policy from a file.
    public static func retention(file path: String) throws -> RetentionPolicy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(.policyInvalid, problems: [ConfigProblem(file: path, line: nil, message: "retention policy file not found or not readable")],
                              hint: "point retention: in cairn.yaml (or --policy) at a readable file, e.g. policies/retention.yaml")
        }
        let r = YAMLReader(file: path)
        guard let root = r.parse(String(decoding: data, as: UTF8.self)) else { throw ConfigError(.policyInvalid, problems: r.problems) }
        let policy = retention(section: r.section(root, path: "", allowed: retentionKeys), reader: r)
        if !r.problems.isEmpty { throw ConfigError(.policyInvalid, problems: r.problems, hint: "fix the retention policy") }
        return policy
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
            r.report(line: s.line("orphan_safety_age"), "orphan_safety_age must be at least 1m: a running backup must never look like garbage")
        }
        return RetentionPolicy(recoveryWindow: window, minFullBackups: minFull, logicalRetention: logical,
                               drillRetention: drills, reportRetention: reports, orphanSafetyAge: safety)
    }
}
