import Foundation
import Logging

/// Cairn's log output: one line per event on stderr, as text (`2026-11-25T15:04:59Z info message key=value`)
/// or as JSON objects for cron and log shippers. Messages never contain secrets (errors keep them out, and
/// secret-looking assignments and URL passwords are redacted here as a last line).
public struct CairnLogHandler: LogHandler {
    /// Text or JSON lines.
    public enum Format: String, Sendable { case text, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: Format

    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let ts = ISO8601DateFormatter().string(from: Date())
        // Messages and values may quote what Cairn did not write (a server setting, a tool's error): no secrets.
        let message = Redaction.redact("\(event.message)")
        func value(_ k: String, _ v: Logger.Metadata.Value) -> String { Redaction.redact("\(v)") }
        var line: String
        switch format {
        case .text:
            line = "\(ts) \(event.level) \(message)"
            for (k, v) in all.sorted(by: { $0.key < $1.key }) { line += " \(k)=\(value(k, v))" }
        case .json:
            var obj: [String: String] = ["time": ts, "level": "\(event.level)", "message": message, "logger": label]
            for (k, v) in all { obj[k] = value(k, v) }
            let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Installs the handler for the process (once, at start-up).
    public static func bootstrap(level: Logger.Level, format: Format) {
        LoggingSystem.bootstrap { label in CairnLogHandler(label: label, level: level, format: format) }
    }
}
