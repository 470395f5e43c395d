import ArgumentParser
import CairnBase
import Foundation
import Logging

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $CAIRN_CONFIG, else ./cairn.yaml).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    @Option(name: .long, help: "Log format on stderr: text or json.")
    var logFormat: String = "text"

    @Flag(name: .shortAndLong, help: "Log progress (same as --log-level info).")
    var verbose = false

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard CairnLogHandler.Format(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json")
        }
    }

    var level: Logger.Level { verbose ? .info : Logger.Level(rawValue: logLevel) ?? .warning }
}

/// The `cairn` command line.
public struct CairnCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "PostgreSQL backup and restore with proof that restores work.",
        version: CairnVersion.current,
        subcommands: [InitCommand.self, CheckCommand.self, ConfigCommand.self])

    public init() {}
}

/// Entry point used by the `cairn` executable.
public enum CairnMain {
    public static func run(arguments: [String]? = nil) async -> Never {
        do {
            var command = try CairnCommand.parseAsRoot(arguments)
            if let g = (Mirror(reflecting: command).children.first { $0.value is GlobalOptions }?.value as? GlobalOptions) {
                CairnLogHandler.bootstrap(level: g.level, format: CairnLogHandler.Format(rawValue: g.logFormat) ?? .text)
            } else {
                CairnLogHandler.bootstrap(level: .warning, format: .text)
            }
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let e as CommandExit {
            exit(e.code)
        } catch let e as any CairnError {
            exit(Output.report(e))
        } catch {
            // Help, version and usage errors: ArgumentParser prints them (usage errors exit 64).
            CairnCommand.exit(withError: error)
        }
    }
}

/// Thrown by a command that already printed its outcome and only needs to set the exit code.
struct CommandExit: Error {
    let code: Int32
}
