/// The shape every Cairn error has, whatever module raised it.
///
/// - `code`: a stable code from ``ErrorCode``; the exit code follows from it.
/// - `message`: one lowercase line without a trailing period, naming what failed; never contains a secret.
/// - `hint`: what the user can do about it, when there is something to do.
public protocol CairnError: Error, CustomStringConvertible, Sendable {
    var code: ErrorCode { get }
    var message: String { get }
    var hint: String? { get }
}

extension CairnError {
    public var description: String {
        var s = "\(message) [\(code.rawValue)]"
        if let hint { s += "\nHINT: \(hint)" }
        return s
    }
}

/// Errors of the base layer (and a generic carrier for errors that must cross a layer unchanged).
public struct BaseError: CairnError {
    public let code: ErrorCode
    public let message: String
    public let hint: String?

    public init(_ code: ErrorCode, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }
}

/// Renders any error as Cairn reports it: the message line, then `HINT:` when there is one.
public func describeError(_ error: any Error) -> (code: ErrorCode, message: String, hint: String?) {
    if let e = error as? any CairnError { return (e.code, e.message, e.hint) }
    if error is CancellationError { return (.interrupted, "the operation was interrupted", nil) }
    return (.internal, "unexpected error: \(String(describing: error))",
            "this is a bug in cairn; please report it with the command you ran")
}
