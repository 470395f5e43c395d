import CairnBase

/// Errors of the PostgreSQL layer: connections, queries, and the pg_* tools.
public struct PostgresError: CairnError {
    public let code: ErrorCode
    public let message: String
    public let hint: String?

    public init(_ code: ErrorCode, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }
}
