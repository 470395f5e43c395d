import Foundation
import Testing

@testable import CairnBase

@Suite struct ErrorCodeTests {
    @Test func everyCodeHasAnExitCodeOutsideTheReservedRange() {
        for code in ErrorCode.allCases {
            let x = code.exitCode
            #expect(x > 0 && x < 256)
            // 1 is reserved for wal-fetch's "not in the archive".
            #expect(x != 1 || code == .walNotFound, "\(code)")
        }
        #expect(ErrorCode.walFetchFatalExitCode > 125)
    }

    @Test func errorsRenderMessageCodeAndHint() {
        let e = CairnError(.configInvalid, "something is wrong", hint: "fix it")
        #expect(e.description == "something is wrong [config.invalid]\nHINT: fix it")
        let (code, message, hint) = describeError(CancellationError())
        #expect(code == .interrupted && !message.isEmpty && hint == nil)
    }

    /// One error type in every layer; the error it wraps is kept (for the debug log), never in the message or
    /// the description.
    @Test func theCauseIsKeptButNeverPrinted() {
        struct LibraryError: Error, CustomStringConvertible { var description: String { "password=hunter2 rejected" } }
        let inner = CairnError(.repoIO, "writing x failed", cause: LibraryError())
        let outer = CairnError(.backupFailed, "backup b failed and was not committed: writing x failed", cause: inner)
        #expect(inner.cause is LibraryError)
        #expect((outer.cause as? CairnError)?.cause is LibraryError)
        for e in [inner, outer] {
            #expect(!e.description.contains("hunter2") && !describeError(e).message.contains("hunter2"))
            #expect(e.description == "\(e.message) [\(e.code.rawValue)]")
        }
    }

    /// The operator's table in runbooks/error-codes.md lists every code with its exit code.
    @Test func runbookTableIsComplete() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../runbooks/error-codes.md"
        ).standardized.path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for code in ErrorCode.allCases {
            #expect(
                text.contains("| `\(code.rawValue)` | \(code.exitCode) |"),
                "runbooks/error-codes.md lacks \(code.rawValue)")
        }
    }
}
