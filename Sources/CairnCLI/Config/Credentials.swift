import CairnBase
import CairnStorage
import Foundation

/// Finds S3 credentials: the AWS environment variables win; otherwise a shared-credentials file
/// (`repository.credentials_file`, or `AWS_SHARED_CREDENTIALS_FILE`) and profile (`AWS_PROFILE`, else
/// `repository.profile`, else `default`). Never from argv.
public struct CredentialResolver {
    public var environment: [String: String]

    public init(environment: [String: String]) { self.environment = environment }

    /// The credentials, a description of where they came from (for hints; no secret), and warnings.
    public func resolve(
        _ s3: Configuration.S3Repo
    ) throws -> (credentials: AWSCredentials, source: String, warnings: [String]) {
        if let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty {
            guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw CairnError(
                    .configInvalid, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
                    hint: "set both variables, or neither to use the credentials file")
            }
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return (
                AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token),
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment", []
            )
        }
        guard
            let path = environment["AWS_SHARED_CREDENTIALS_FILE"].flatMap({ $0.isEmpty ? nil : $0 })
                ?? s3.credentialsFile
        else {
            throw CairnError(
                .configInvalid, "no S3 credentials: neither AWS_ACCESS_KEY_ID nor repository.credentials_file is set",
                hint:
                    "set repository.credentials_file to a file in AWS credentials format (mode 0600), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        }
        let profile = environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? s3.profile
        var warnings: [String] = []
        guard let (data, warning) = FileIO.readSecret(path, what: "credentials file") else {
            throw CairnError(
                .configInvalid, "credentials file \(path) does not exist or is not readable",
                hint: "create it (mode 0600, owned by the user cairn runs as) or fix repository.credentials_file")
        }
        if let warning { warnings.append(warning) }
        let sections = CredentialResolver.parseINI(String(decoding: data, as: UTF8.self))
        guard let sec = sections[profile] else {
            throw CairnError(
                .configInvalid, "credentials file \(path) has no [\(profile)] profile",
                hint: "add a [\(profile)] section or set repository.profile / AWS_PROFILE")
        }
        guard let id = sec["aws_access_key_id"], let secret = sec["aws_secret_access_key"] else {
            throw CairnError(
                .configInvalid, "profile [\(profile)] in \(path) lacks aws_access_key_id or aws_secret_access_key")
        }
        return (
            AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: sec["aws_session_token"]),
            "profile [\(profile)] of credentials file \(path)", warnings
        )
    }

    /// Parses the AWS INI format: `[profile]` sections of `key = value` lines; `#`/`;` comments.
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        var current: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = String(name.dropFirst(8)).trimmingCharacters(in: .whitespaces) }
                current = name
                out[name, default: [:]] = out[name] ?? [:]
            } else if let eq = line.firstIndex(of: "="), let cur = current {
                let k = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
                let v = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                out[cur, default: [:]][k] = v
            }
        }
        return out
    }
}
