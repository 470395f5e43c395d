import CairnBase

/// Errors of the core layer: pipeline integrity, catalog, operations.
public struct CoreError: CairnError {
    public let code: ErrorCode
    public let message: String
    public let hint: String?

    public init(_ code: ErrorCode, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }
}

extension CoreError {
    /// Several independent problems as one error, so one run tells the operator everything to fix: a summary line,
    /// then one line per problem with its code and fix; the code (and exit code) is the first problem's. A single
    /// problem is returned as it is.
    public static func combining(_ errors: [any Error], summary: String) -> any Error {
        guard errors.count > 1 else { return errors[0] }
        let lines = errors.map(describeError).map { e in "  - \(e.message) [\(e.code.rawValue)]\(e.hint.map { " — \($0)" } ?? "")" }
        return CoreError(describeError(errors[0]).code, "\(errors.count) problems \(summary)\n" + lines.joined(separator: "\n"),
                         hint: "fix each problem listed above, then run the command again")
    }
}
