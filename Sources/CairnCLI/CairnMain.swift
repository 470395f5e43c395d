import ArgumentParser
import CairnBase
import Foundation
import Logging

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $CAIRN_CONFIG, else ./cairn.yaml).")
    var config: String?

    @Option(name: .long, help: "Work on this repository only (a name from repositories: in cairn.yaml).")
    var repo: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    @Option(name: .long, help: "Log format on stderr: text or json.")
    var logFormat: String = "text"

    @Flag(
        name: .shortAndLong, help: "Log progress (same as --log-level info); without a terminal, print progress lines.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Only errors: no progress display, log level error.")
    var quiet = false

    func validate() throws {
        guard !(quiet && verbose) else {
            throw ValidationError("--quiet and --verbose contradict each other; choose one")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard CairnLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json")
        }
    }

    var level: Logger.Level { quiet ? .error : verbose ? .info : Logger.Level(rawValue: logLevel) ?? .warning }
}

/// The `cairn` command line.
public struct CairnCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "PostgreSQL backup and restore with proof that restores work.",
        version: CairnVersion.current,
        subcommands: [
            InitCommand.self, CheckCommand.self, BackupCommand.self, RestoreCommand.self, ListCommand.self,
            InfoCommand.self, ExpireCommand.self, PinCommand.self, UnpinCommand.self, VerifyCommand.self,
            DoctorCommand.self,
            DrillCommand.self, FindCommand.self, ReportCommand.self, DaemonCommand.self, MetricsCommand.self,
            ScheduleCommand.self,
            CopyCommand.self, WalPushCommand.self, WalPushAheadCommand.self,
            WalFetchCommand.self, WalPrefetchCommand.self, ConfigCommand.self, KeyCommand.self, TimelineCommand.self
        ])

    public init() {}
}

/// Entry point used by the `cairn` executable.
public enum CairnMain {
    public static func run(arguments: [String]? = nil) async -> Never {
        // An interrupt runs the clean-ups jobs registered, then reports what they did.
        Interruption.setExitHandler { done in
            Output.stderr(
                "cairn: error: interrupted\(done.isEmpty ? "" : "; " + done.joined(separator: "; ")) [interrupted]")
            terminate(ErrorCode.interrupted.exitCode)
        }
        do {
            let args = hoistGlobalOptions(arguments ?? Array(CommandLine.arguments.dropFirst()))
            var command = try parse(args)
            if let g = globalOptions(of: command) {
                CairnLogHandler.bootstrap(
                    level: g.level, format: CairnLogHandler.Format(rawValue: g.logFormat) ?? .text)
            } else {
                CairnLogHandler.bootstrap(level: .warning, format: .text)
            }
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            Interruption.waitIfInterrupted()
            terminate(0)
        } catch let e as CommandExit {
            Interruption.waitIfInterrupted()
            terminate(e.code)
        } catch let e as any ReportableError {
            Interruption.waitIfInterrupted()
            terminate(Output.report(e))
        } catch {
            // Usage errors are reported like every other error (one line, the code, a hint); help and version
            // requests are printed by ArgumentParser.
            if CairnCommand.exitCode(for: error) == .validationFailure {
                terminate(
                    Output.report(usageError(error, arguments: arguments ?? Array(CommandLine.arguments.dropFirst()))))
            }
            CairnCommand.exit(withError: error)
        }
    }
}

extension CairnMain {
    /// Ends the process once stdout and stderr are flushed, without exit-time destructors: a transfer thread
    /// may still be releasing its curl handle while OpenSSL's exit handler frees the locks that handle uses
    /// (a segmentation fault seen once in CI, at the end of `cairn list`). Nothing Cairn writes depends on them.
    static func terminate(_ code: Int32) -> Never {
        fflush(nil)  // every output stream
        _exit(code)
    }

    /// A command-line mistake as a `usage` error: ArgumentParser's message on one line, lowercased like Cairn's own,
    /// and a hint naming the command's help.
    static func usageError(_ error: any Error, arguments: [String]) -> CairnError {
        var message = CairnCommand.message(for: error).split(whereSeparator: \.isNewline).map(String.init)
            .joined(separator: "; ").trimmingCharacters(in: .whitespaces)
        if message.hasPrefix("Error: ") { message.removeFirst(7) }
        if let f = message.first, f.isUppercase, message.dropFirst().first?.isLowercase == true {
            message = f.lowercased() + message.dropFirst()
        }
        while message.hasSuffix(".") { message.removeLast() }
        let names = Set(CairnCommand.configuration.subcommands.compactMap { $0.configuration.commandName })
        let command = arguments.first { names.contains($0) }
        return CairnError(.usage, message, hint: "see `cairn \(command.map { $0 + " " } ?? "")--help`")
    }

    /// Parses the arguments. PostgreSQL starts `cairn wal-push` for every WAL file, so those are parsed against
    /// that command alone: building the whole command tree reflects every command's options, a quarter of the
    /// CPU of a `wal-push` acknowledged from a push-ahead record. Anything that command alone does not accept
    /// (help, a mistake) goes through the full tree, which reports it as before.
    static func parse(_ args: [String]) throws -> any ParsableCommand {
        if args.first == WalPushCommand.configuration.commandName,
            let c = try? WalPushCommand.parse(Array(args.dropFirst()))
        {
            return c
        }
        return try CairnCommand.parseAsRoot(args)
    }

    /// The parsed global options of a command (its `@OptionGroup var global`), so --log-level, --quiet, --verbose and
    /// --log-format reach the log handler. The property wrapper stores an `OptionGroup<GlobalOptions>`.
    static func globalOptions(of command: any ParsableCommand) -> GlobalOptions? {
        for child in Mirror(reflecting: command).children {
            if let g = child.value as? GlobalOptions { return g }
            if let g = child.value as? OptionGroup<GlobalOptions> { return g.wrappedValue }
        }
        return nil
    }

    /// `cairn --config X wal-push %p` reads naturally, but ArgumentParser only accepts a subcommand's options
    /// after it: move global options written before the subcommand to the end of the arguments.
    static func hoistGlobalOptions(_ args: [String]) -> [String] {
        let withValue: Set<String> = ["--config", "--repo", "--log-level", "--log-format"]
        let flags: Set<String> = ["-v", "--verbose", "-q", "--quiet"]
        var hoisted: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            let name = a.split(separator: "=", maxSplits: 1).first.map(String.init) ?? a
            if withValue.contains(name) {
                if a.contains("=") {
                    hoisted.append(a); i += 1
                } else if i + 1 < args.count {
                    hoisted += [a, args[i + 1]]; i += 2
                } else {
                    break
                }
            } else if flags.contains(a) {
                hoisted.append(a); i += 1
            } else {
                break
            }
        }
        guard !hoisted.isEmpty, i < args.count else { return args }
        var rest = Array(args[i...])
        let dashDash = rest.firstIndex(of: "--") ?? rest.count
        rest.insert(contentsOf: hoisted, at: dashDash)
        return rest
    }
}

/// Thrown by a command that already printed its outcome and only needs to set the exit code.
struct CommandExit: Error {
    let code: Int32
}
