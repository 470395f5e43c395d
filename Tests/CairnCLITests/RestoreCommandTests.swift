import Foundation
import Testing

@testable import CairnCLI

@Suite struct RestoreCommandTests {
    @Test func targetTimesKeepMicrosecondsAndZones() throws {
        let base = Date(timeIntervalSince1970: 1_764_081_120)  // 2025-11-25 14:32:00 UTC
        for (text, expected) in [
            ("2025-11-25 14:32:00+00", 0.0), ("2025-11-25T14:32:00Z", 0.0),
            ("2025-11-25 14:32:00.015625+00", 0.015625), ("2025-11-25T14:32:00.5Z", 0.5),
            ("2025-11-25 15:32:00+01:00", 0.0), ("2025-11-25 16:32:00.000001+02", 0.000001)
        ] {
            let d = try #require(TimeParser.parse(text), "\(text)")
            #expect(abs(d.timeIntervalSince(base) - expected) < 0.0000005, "\(text)")
        }
        #expect(TimeParser.parse("yesterday") == nil)
        #expect(TimeParser.parse("2025-13-45 99:00:00") == nil)
    }

    @Test func localTimesUseTheTimeZone() throws {
        let d = try #require(TimeParser.parse("2025-11-25 14:32:00"))
        let offset = TimeZone.current.secondsFromGMT(for: d)
        #expect(d.timeIntervalSince1970 == 1_764_081_120 - Double(offset))
    }

    @Test func shellQuoting() {
        #expect(ShellQuote.quote("/usr/local/bin/cairn") == "/usr/local/bin/cairn")
        #expect(ShellQuote.quote("/etc/my cairn/c.yaml") == "'/etc/my cairn/c.yaml'")
        #expect(ShellQuote.quote("it's") == "'it'\\''s'")
    }

    @Test func globalOptionsBeforeTheSubcommandAreAccepted() {
        #expect(
            CairnMain.hoistGlobalOptions(["--config", "/c.yaml", "wal-push", "pg_wal/x"]) == [
                "wal-push", "pg_wal/x", "--config", "/c.yaml"
            ])
        #expect(
            CairnMain.hoistGlobalOptions(["--config=/c.yaml", "-v", "config", "show"]) == [
                "config", "show", "--config=/c.yaml", "-v"
            ])
        #expect(CairnMain.hoistGlobalOptions(["backup", "--config", "/c"]) == ["backup", "--config", "/c"])
        #expect(
            CairnMain.hoistGlobalOptions(["--config", "/c", "--quiet", "backup"]) == [
                "backup", "--config", "/c", "--quiet"
            ])
        #expect(
            CairnMain.hoistGlobalOptions(["--config", "/c", "x", "--", "--y"]) == ["x", "--config", "/c", "--", "--y"])
    }

    /// The log options reach the log handler (they were parsed, then ignored: the crash campaign's `--quiet` runs
    /// still printed retry warnings).
    @Test func globalLogOptionsAreFound() throws {
        let quiet = CairnMain.globalOptions(
            of: try CairnCommand.parseAsRoot(CairnMain.hoistGlobalOptions(["--quiet", "list"])))
        #expect(quiet?.level == .error)
        let json = CairnMain.globalOptions(
            of: try CairnCommand.parseAsRoot(["list", "--log-level", "debug", "--log-format", "json"]))
        #expect(json?.level == .debug)
        #expect(json?.logFormat == "json")
        #expect(CairnMain.globalOptions(of: try CairnCommand.parseAsRoot(["wal-push", "x", "-v"]))?.level == .info)
    }
}
