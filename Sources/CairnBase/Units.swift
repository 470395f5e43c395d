import Foundation

/// Parsing and printing of sizes ("16MiB", "512k") and durations ("30d", "90s", "1h30m").
public enum Units {
    /// Parses a byte size: a number with an optional unit (B, k/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB).
    /// All units are binary (1k = 1024), as in PostgreSQL's settings.
    public static func parseSize(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let digits = t.prefix { $0.isNumber }
        guard !digits.isEmpty, let n = Int64(digits) else { return nil }
        let unit = t.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let mult: Int64
        switch unit {
        case "", "b": mult = 1
        case "k", "kb", "kib": mult = 1 << 10
        case "m", "mb", "mib": mult = 1 << 20
        case "g", "gb", "gib": mult = 1 << 30
        case "t", "tb", "tib": mult = 1 << 40
        default: return nil
        }
        let (r, overflow) = n.multipliedReportingOverflow(by: mult)
        return overflow ? nil : r
    }

    /// Parses a duration made of one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`, `w`
    /// ("30d", "1h30m", "500ms"). Returns seconds.
    public static func parseDuration(_ text: String) -> Double? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces).lowercased())
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let n = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            switch unit {
            case "ms": total += n / 1000
            case "s": total += n
            case "m", "min": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86400
            case "w": total += n * 7 * 86400
            default: return nil
            }
        }
        return total
    }

    /// "1.5 GiB", "312 KiB", "12 B".
    public static func formatBytes(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var v = Double(bytes)
        var i = 0
        while abs(v) >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(bytes) B" : String(format: "%.1f %@", v, units[i])
    }

    /// "2h05m", "3m12s", "4.2s", "180ms".
    public static func formatDuration(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let s = Int(seconds.rounded())
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        if s < 86400 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        return String(format: "%dd%02dh", s / 86400, (s % 86400) / 3600)
    }
}
