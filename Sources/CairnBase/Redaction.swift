import Foundation

/// Hides secrets in text Cairn did not write itself and echoes back: settings read from the server
/// (`archive_command`), commands, error details, log messages.
public enum Redaction {
    /// What a hidden value reads as.
    public static let placeholder = "<redacted>"

    /// `NAME=value`, `--name=value`, `name = 'value'` (libpq): the name, then the value (quoted or up to a blank).
    /// (Constant patterns: nil never happens in practice, and then ``redact(_:)`` hides the whole text.)
    static let assignment = try? NSRegularExpression(
        pattern:
            #"(?<![A-Za-z0-9_.-])(?:--?)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'";&|]+)"#
    )
    /// `scheme://user:password@host`: the password.
    static let urlPassword = try? NSRegularExpression(
        pattern: #"([A-Za-z][A-Za-z0-9+.-]*://[^:@/\s'"]+):([^@/\s'"]+)@"#)

    /// Whether a setting's name says it holds a secret: it mentions a secret, password, token or credential, or it
    /// is a key (`AWS_SECRET_ACCESS_KEY`, `AWS_ACCESS_KEY_ID`, `CAIRN_MASTER_KEY`, `PGPASSWORD`, `password`).
    public static func isSecretName(_ name: String) -> Bool {
        let n = name.lowercased()
        return ["secret", "password", "passwd", "token", "credential"].contains { n.contains($0) }
            || n.hasSuffix("key") || n.hasSuffix("key_id") || n == "pwd"
    }

    /// `text` with the value of every secret-looking assignment and every URL's password replaced by
    /// ``placeholder``; everything else unchanged.
    public static func redact(_ text: String) -> String {
        // Most text (every wal-push log line) holds neither: no regular expression is compiled for it, so no ICU.
        guard text.contains("=") || text.contains("://") else { return text }
        guard let urlPassword, assignment != nil else { return placeholder }
        var out = text
        for (_, value) in secretAssignments(out).reversed() { out.replaceSubrange(value, with: placeholder) }
        let ns = out as NSString
        for m in urlPassword.matches(in: out, range: NSRange(location: 0, length: ns.length)).reversed() {
            out = (out as NSString).replacingCharacters(in: m.range(at: 2), with: placeholder)
        }
        return out
    }

    /// The names of the secrets `text` carries inline (assignments and URL passwords), in order, without repeats.
    public static func inlineSecrets(in text: String) -> [String] {
        var names: [String] = []
        for (name, _) in secretAssignments(text) where !names.contains(name) { names.append(name) }
        let ns = text as NSString
        guard let urlPassword else { return names }
        if !urlPassword.matches(in: text, range: NSRange(location: 0, length: ns.length)).isEmpty {
            names.append("a password in a URL")
        }
        return names
    }

    /// Each secret-looking assignment: its name and the range of its value.
    static func secretAssignments(_ text: String) -> [(String, Range<String.Index>)] {
        let ns = text as NSString
        guard let assignment else { return [] }
        return assignment.matches(in: text, range: NSRange(location: 0, length: ns.length)).compactMap { m in
            let name = ns.substring(with: m.range(at: 1))
            guard isSecretName(name), let value = Range(m.range(at: 2), in: text) else { return nil }
            return (name, value)
        }
    }
}
