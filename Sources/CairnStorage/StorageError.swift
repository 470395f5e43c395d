import CairnBase

/// Errors raised by repository drivers are ``CairnError``s; messages name the object and the location, never a
/// credential.
extension CairnError {
    static func missing(_ key: String, in location: String) -> CairnError {
        CairnError(.repoObjectMissing, "object \(key) does not exist in \(location)")
    }

    static func exists(_ key: String, in location: String) -> CairnError {
        CairnError(.repoObjectExists, "object \(key) already exists in \(location) and was not overwritten")
    }
}
