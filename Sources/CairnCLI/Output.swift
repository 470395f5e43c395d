import CairnBase
import Foundation
import Logging

/// Writing results: human text on stdout, or JSON with `--json`.
enum Output {
    static func line(_ s: String = "") {
        FileHandle.standardOutput.write(Data((s + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        FileHandle.standardOutput.write(try e.encode(value))
        line()
    }

    static func stderr(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    /// Prints an error as `cairn: error: <message> [code]` plus `HINT: …`, and returns its exit code. A message of
    /// several lines (a summary, then one line per problem) carries the code on its first line. Secret-looking
    /// values (a server setting or a command quoted in the message) are redacted. The error's causes go to the log
    /// at debug level.
    static func report(_ error: any Error) -> Int32 {
        let (code, message, hint) = describeError(error)
        var lines = Redaction.redact(message).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[0] = "cairn: error: \(lines[0]) [\(code.rawValue)]"
        for l in lines { stderr(l) }
        if let hint { stderr("HINT: \(Redaction.redact(hint))") }
        (error as? CairnError)?.logCause(to: Logger(label: "cairn"))
        return code.exitCode
    }
}
