import Logging

/// The shape every error Cairn reports has, whatever module raised it: ``CairnError``, and errors that carry
/// more structure (a configuration file's problems with their lines).
///
/// - `code`: a stable code from ``ErrorCode``; the exit code follows from it.
/// - `message`: one lowercase line without a trailing period, naming what failed; never contains a secret.
/// - `hint`: what the user can do about it, when there is something to do.
public protocol ReportableError: Error, CustomStringConvertible, Sendable {
    var code: ErrorCode { get }
    var message: String { get }
    var hint: String? { get }
}

extension ReportableError {
    public var description: String {
        var s = "\(message) [\(code.rawValue)]"
        if let hint { s += "\nHINT: \(hint)" }
        return s
    }
}

/// Cairn's error, in every layer: a stable code, a one-line message, a hint, and the error that caused it.
///
/// The cause is kept for the logs at debug level (``logCause(to:)``), never put in the message or the
/// description: it may be a library's error whose text Cairn does not control.
public struct CairnError: ReportableError {
    public let code: ErrorCode
    public let message: String
    public let hint: String?
    /// True when retrying the same request may succeed (5xx, timeouts, dropped connections); set by storage drivers.
    public let retryable: Bool
    /// The error this one reports, when it wraps another.
    public let cause: (any Error)?

    public init(
        _ code: ErrorCode, _ message: String, hint: String? = nil, retryable: Bool = false, cause: (any Error)? = nil
    ) {
        self.code = code
        self.message = message
        self.hint = hint
        self.retryable = retryable
        self.cause = cause
    }

    /// Logs the chain of causes at debug level (redacted), for whoever turned it on.
    public func logCause(to logger: Logger) {
        var next = cause
        while let c = next {
            logger.debug("caused by", metadata: ["error": "\(Redaction.redact(String(describing: c)))"])
            next = (c as? CairnError)?.cause
        }
    }
}

extension CairnError {
    /// Several independent problems as one error, so one run tells the operator everything to fix: a summary line,
    /// then one line per problem with its code and fix; the code (and exit code) is the first problem's. A single
    /// problem is returned as it is.
    public static func combining(_ errors: [any Error], summary: String) -> any Error {
        guard errors.count > 1 else { return errors[0] }
        let lines = errors.map(describeError).map { e in
            "  - \(e.message) [\(e.code.rawValue)]\(e.hint.map { " — \($0)" } ?? "")"
        }
        return CairnError(
            describeError(errors[0]).code, "\(errors.count) problems \(summary)\n" + lines.joined(separator: "\n"),
            hint: "fix each problem listed above, then run the command again")
    }
}

/// Renders any error as Cairn reports it: the message line, then `HINT:` when there is one.
public func describeError(_ error: any Error) -> (code: ErrorCode, message: String, hint: String?) {
    if let e = error as? any ReportableError { return (e.code, e.message, e.hint) }
    if error is CancellationError { return (.interrupted, "the operation was interrupted", nil) }
    return (
        .internal, "unexpected error: \(String(describing: error))",
        "this is a bug in cairn; please report it with the command you ran"
    )
}
