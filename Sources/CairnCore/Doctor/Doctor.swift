import CairnBase
import Foundation

/// `cairn doctor`'s judgement: a pure function from gathered facts (``DoctorFacts``) and the time to findings,
/// each with a severity, what it means, and the fix.
public enum Doctor {
    /// How bad a finding is. The command's exit code is that of the worst one (Nagios-style: 0, 1, 2).
    public enum Severity: String, Codable, Sendable, Comparable, CaseIterable {
        case ok, info, warning, critical

        public static func < (a: Severity, b: Severity) -> Bool { rank(a) < rank(b) }
        static func rank(_ s: Severity) -> Int { Severity.allCases.firstIndex(of: s)! }

        /// 0 for ok and info, 1 for a warning, 2 for a critical finding.
        public var exitCode: Int32 { self == .critical ? 2 : self == .warning ? 1 : 0 }
    }

    /// One line of the review.
    public struct Finding: Codable, Sendable, Equatable {
        /// Stable identifier, e.g. `archive_mode`.
        public var check: String
        public var severity: Severity
        /// What was found and why it matters.
        public var explanation: String
        /// A command or setting that fixes it (nil when nothing needs doing).
        public var fix: String?
    }

    /// The halves of the review: the cluster's archiving, and one repository with its backups and drills. With
    /// several repositories `doctor` reviews the cluster once and each repository on its own.
    public enum Part: Sendable {
        case cluster, repository
    }

    /// Reviews the facts. Checks whose facts could not be gathered say so instead of guessing.
    public static func evaluate(_ f: DoctorFacts, now: Date, parts: Set<Part> = [.cluster, .repository]) -> [Finding] {
        var review = Review(f: f, now: now)
        if parts.contains(.cluster) {
            review.cluster()
            review.server()
            review.archiver()
            review.archiveBacklog()
        }
        if parts.contains(.repository) {
            review.repository()
            review.backupsAndDrills()
            review.lag()
        }
        return review.findings
    }

    /// Whether the live cluster's timeline is production's recorded history, and whether restores can tell which
    /// history is production's.
    static func lineageFindings(
        _ lineage: Lineage, liveTimeline: UInt32?,
        _ add: (String, Severity, String, String?) -> Void
    ) {
        if let tli = liveTimeline {
            switch lineage.statuses[tli] ?? .undecided {
            case .production:
                add("lineage", .ok, "the cluster's timeline \(tli) is production's recorded history", nil)
            case .copy:
                add(
                    "lineage", .critical,
                    "the cluster cluster.connection reaches runs on timeline \(tli), which the repository records as a copy's: restores and retention follow timeline \(lineage.production) instead",
                    "if this cluster is production, `cairn timeline adopt \(tli) --reason ...`; otherwise point cluster.connection at production (runbooks/side-restore.md)"
                )
            case .undecided:
                add(
                    "lineage", .warning,
                    "the cluster runs on timeline \(tli), which is not yet recorded as production's: restores refuse to choose between it and timeline \(lineage.production) until a backup runs on it",
                    "run `cairn backup` (or `cairn timeline adopt \(tli) --reason ...`)")
            }
        }
        if !lineage.ambiguous.isEmpty, liveTimeline.map({ !lineage.ambiguous.contains($0) }) ?? true {
            add(
                "lineage_ambiguous", .warning, lineage.ambiguityError().message,
                "see `cairn timeline` and runbooks/side-restore.md")
        }
    }

    /// The worst severity of `findings` (ok when empty).
    public static func worst(_ findings: [Finding]) -> Severity { findings.map(\.severity).max() ?? .ok }
}
