import CairnBase
import Foundation

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

    /// Prints an error as `cairn: error: <message> [code]` plus `HINT: …`, and returns its exit code.
    static func report(_ error: any Error) -> Int32 {
        let (code, message, hint) = describeError(error)
        stderr("cairn: error: \(message) [\(code.rawValue)]")
        if let hint { stderr("HINT: \(hint)") }
        return code.exitCode
    }
}
