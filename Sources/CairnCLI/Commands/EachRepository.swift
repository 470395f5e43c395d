import CairnBase
import CairnCore
import CairnStorage
import Foundation

/// Runs a command on every configured repository in order (or the one `--repo` names), so that one repository
/// failing does not stop the others.
///
/// With one repository the command prints and fails exactly as it always did. With several:
/// - text: a heading `repository NAME (location)` before each repository's section; a repository that failed
///   gets `FAILED: message [code]` and its `HINT:` in its section;
/// - JSON: `{"repositories": [{"name", "location", "result", "error"}]}`, `result` being what the command prints
///   for one repository and `error` (`code`, `message`, `hint`) present when that repository failed;
/// - the command then fails once (``RepositoryFailures/summary(_:total:)``): one failure keeps its code and hint,
///   several are named, with the code of the worst.
struct EachRepository {
    let set: RepositorySet
    let json: Bool

    /// One repository's entry in the JSON of several.
    struct Entry<J: Encodable>: Encodable {
        var name: String
        var location: String
        var result: J?
        var error: ErrorJSON?
    }

    /// An error as JSON.
    struct ErrorJSON: Encodable {
        var code: String
        var message: String
        var hint: String?

        init(_ error: any Error) {
            let (code, message, hint) = describeError(error)
            self.code = code.rawValue
            self.message = Redaction.redact(message)
            self.hint = hint.map(Redaction.redact)
        }
    }

    /// The JSON of several repositories.
    struct Several<J: Encodable>: Encodable { var repositories: [Entry<J>] }

    /// Runs `body` on each repository, prints `text` of its result (text mode), then `verdict` (which may throw
    /// after the result was printed, e.g. verify's problems); `encode` gives the JSON of a result.
    func run<T, J: Encodable>(
        _ body: (RepositorySet.Member) async throws -> T, encode: (T) -> J, text: (T) -> Void,
        verdict: (T, RepositorySet.Member) throws -> Void = { _, _ in }
    ) async throws {
        guard set.isSeveral else {
            let m = set.primary
            let r = try await body(m)
            if json { try Output.json(encode(r)) } else { text(r) }
            return try verdict(r, m)
        }
        var entries: [Entry<J>] = []
        var failures: [RepositoryFailures.Failure] = []
        for m in set.members {
            if !json { Self.heading(m) }
            var entry = Entry<J>(name: m.name, location: m.repo.location, result: nil, error: nil)
            do {
                let r = try await body(m)
                entry.result = encode(r)
                if !json { text(r) }
                try verdict(r, m)
            } catch {
                failures.append(.init(name: m.name, error: error))
                entry.error = ErrorJSON(error)
                if !json { Self.printFailure(error) }
            }
            entries.append(entry)
        }
        if json { try Output.json(Several(repositories: entries)) }
        if let e = RepositoryFailures.summary(failures, total: set.members.count) { throw e }
    }

    /// The line before a repository's section.
    static func heading(_ m: RepositorySet.Member) {
        Output.line("repository \(m.name) (\(m.repo.location))")
    }

    /// A failed repository's lines in its section (the command's error line at the end names it again).
    static func printFailure(_ error: any Error) {
        let (code, message, hint) = describeError(error)
        Output.line("FAILED: \(Redaction.redact(message)) [\(code.rawValue)]")
        if let hint { Output.line("HINT: \(Redaction.redact(hint))") }
    }
}
