import CairnBase

/// Errors raised by repository drivers. Messages name the object and the location, never a credential.
public struct StorageError: CairnError {
    public let code: ErrorCode
    public let message: String
    public let hint: String?
    /// True when retrying the same request may succeed (5xx, timeouts, dropped connections).
    public let retryable: Bool

    public init(_ code: ErrorCode, _ message: String, hint: String? = nil, retryable: Bool = false) {
        self.code = code
        self.message = message
        self.hint = hint
        self.retryable = retryable
    }

    static func missing(_ key: String, in location: String) -> StorageError {
        StorageError(.repoObjectMissing, "object \(key) does not exist in \(location)")
    }

    static func exists(_ key: String, in location: String) -> StorageError {
        StorageError(.repoObjectExists, "object \(key) already exists in \(location) and was not overwritten")
    }
}
