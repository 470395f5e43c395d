import Foundation
import TestSupport
import Testing

/// The progress line as a user sees it: a backup run in a real terminal (tmux) redraws bytes, share, rate and
/// ETA; without a terminal it prints no progress, and `--verbose` gives plain lines instead.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct TerminalProgressTests {
    @Test func aTerminalShowsBytesShareRateAndETA() throws {
        // One lane and a slow compression level: the backup must outlast the progress line's first half second
        // even on a fast machine (at level 3 it once took 778 ms).
        let c = try ScratchCluster(name: "tty") { dir, conninfo in
            try TestRepository.config(
                .local, dir: dir, conninfo: conninfo, limits: ["parallelism: 1"],
                extra: "compression:\n  level: 9\n  threads: 1")
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 20 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )

        let session = "cairn-progress-\(getpid())"
        let command =
            "runuser -u postgres -- \(Run.installedCairn) --config \(c.config!) backup; echo EXIT=$?; sleep 300"
        try Run.program("/usr/bin/tmux", ["new-session", "-d", "-s", session, "-x", "160", "-y", "12", command])
        defer { _ = try? Run.program("/usr/bin/tmux", ["kill-session", "-t", session]) }
        var screens: [String] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let screen = try Run.program("/usr/bin/tmux", ["capture-pane", "-p", "-t", session]).stdout
            if screen != screens.last { screens.append(screen) }
            if screen.contains("EXIT=") { break }
            usleep(100_000)
        }
        let progress = screens.filter { $0.contains("backup: ") && $0.contains(" of ") && $0.contains("ETA") }
        #expect(
            !progress.isEmpty,
            "no progress line among \(screens.count) screens:\n\(screens.joined(separator: "\n---\n"))")
        if let line = progress.last?.split(separator: "\n").first(where: { $0.contains("ETA") }) {
            #expect(
                line.range(
                    of: #"backup: [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B \([0-9]+%\) at [0-9.]+ [KMG]?i?B/s, ETA "#,
                    options: .regularExpression) != nil, "\(line)")
            Measurements.record(["terminal progress line during a backup: \(line)"])
        }
        #expect(screens.last?.contains("EXIT=0") == true, "\(screens.last ?? "")")

        // Not a terminal: the result only. With --verbose: plain progress lines, no carriage returns.
        let quiet = try c.cairn(["backup"])
        #expect(quiet.status == 0 && !quiet.stderr.contains("backup: "), "\(quiet.stderr)")
        let verbose = try c.cairn(["backup", "--verbose"])
        #expect(
            verbose.status == 0 && verbose.stderr.contains("backup: copying base backup")
                && !verbose.stderr.contains("\r"), "\(verbose.stderr)")
    }
}
