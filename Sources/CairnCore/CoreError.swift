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
