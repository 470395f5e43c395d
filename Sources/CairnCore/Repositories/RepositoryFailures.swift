import CairnBase
import Foundation

/// How a command over every repository ends when some of them failed (`list`, `info`, `verify`, `expire`,
/// `check`, `init`, `report`): each failure was reported under its repository's heading, the others went on, and
/// the command fails once with the worst failure's code.
public enum RepositoryFailures {
    /// One repository's failure.
    public struct Failure {
        public let name: String
        public let error: any Error

        public init(name: String, error: any Error) {
            self.name = name
            self.error = error
        }
    }

    /// The failure whose code the command exits with: the first that says data is damaged or missing (exit 65 or
    /// 66: backups there may not restore), else the first in the repositories' order (the primary first).
    public static func worst(_ failures: [Failure]) -> Failure? {
        failures.first { [65, 66].contains(describeError($0.error).code.exitCode) } ?? failures.first
    }

    /// The one error line of a command that ran on `total` repositories: nil when none failed; one failure keeps
    /// its code, message (prefixed with the repository's name) and hint; several are named with their codes, and
    /// the code is the worst's.
    public static func summary(_ failures: [Failure], total: Int) -> CairnError? {
        guard let worst = worst(failures) else { return nil }
        let (code, message, hint) = describeError(worst.error)
        if failures.count == 1 {
            return CairnError(code, "repository \(worst.name): \(message)", hint: hint)
        }
        let named = failures.map { "\($0.name) [\(describeError($0.error).code.rawValue)]" }
        return CairnError(
            code, "\(failures.count) of \(total) repositories failed: \(named.joined(separator: ", "))",
            hint: "each failure is reported under its repository's heading above")
    }
}
