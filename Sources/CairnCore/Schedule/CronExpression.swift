import Foundation

/// A standard 5-field cron expression: minute, hour, day of month, month, day of week.
///
/// Each field takes `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b-c`; months and weekdays also
/// take names (`JAN`…`DEC`, `SUN`…`SAT`, any case), and 7 is Sunday like 0. The shortcuts `@yearly` (`@annually`),
/// `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly` are accepted. As in Vixie cron, when both the day of
/// month and the day of week are restricted, a day matches if either does.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0 = Sunday … 6 = Saturday.
    public let daysOfWeek: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool
    /// The expression as written.
    public let text: String

    public var description: String { text }

    /// Why an expression was refused.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(_ expression: String) throws {
        text = expression
        var e = expression.trimmingCharacters(in: .whitespaces).lowercased()
        switch e {
        case "@yearly", "@annually": e = "0 0 1 1 *"
        case "@monthly": e = "0 0 1 * *"
        case "@weekly": e = "0 0 * * 0"
        case "@daily", "@midnight": e = "0 0 * * *"
        case "@hourly": e = "0 * * * *"
        default:
            if e.hasPrefix("@") {
                throw ParseError(
                    description:
                        "unknown shortcut \"\(expression)\" (use @yearly, @monthly, @weekly, @daily or @hourly)")
            }
        }
        let f = e.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard f.count == 5 else {
            throw ParseError(
                description:
                    "\"\(expression)\" has \(f.count) fields; a cron expression has 5: minute hour day-of-month month day-of-week"
            )
        }
        minutes = try CronExpression.field(f[0], "minute", 0...59)
        hours = try CronExpression.field(f[1], "hour", 0...23)
        daysOfMonth = try CronExpression.field(f[2], "day of month", 1...31)
        months = try CronExpression.field(f[3], "month", 1...12, names: CronExpression.monthNames, nameBase: 1)
        daysOfWeek = Set(
            try CronExpression.field(f[4], "day of week", 0...7, names: CronExpression.dayNames, nameBase: 0).map {
                $0 % 7
            })
        domRestricted = f[2] != "*"
        dowRestricted = f[4] != "*"
    }

    static func field(
        _ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0
    ) throws -> Set<Int> {
        func value(_ s: Substring) throws -> Int {
            if let i = names.firstIndex(of: String(s)) { return i + nameBase }
            guard let v = Int(s), range.contains(v) else {
                throw ParseError(
                    description:
                        "\(name) \"\(s)\" is not in \(range.lowerBound)–\(range.upperBound)\(names.isEmpty ? "" : " or a name")"
                )
            }
            return v
        }
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else {
                throw ParseError(description: "empty list item in the \(name) field \"\(text)\"")
            }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw ParseError(description: "\(name) \"\(part)\" has more than one /") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s > 0 else {
                    throw ParseError(
                        description: "step \"\(pieces[1])\" in the \(name) field must be a positive number")
                }
                step = s
            }
            let lo: Int, hi: Int
            if pieces[0] == "*" {
                (lo, hi) = (range.lowerBound, range.upperBound)
            } else if let dash = pieces[0].firstIndex(of: "-") {
                lo = try value(pieces[0][..<dash])
                hi = try value(pieces[0][pieces[0].index(after: dash)...])
                guard lo <= hi else { throw ParseError(description: "\(name) range \"\(pieces[0])\" runs backwards") }
            } else {
                lo = try value(pieces[0])
                hi = pieces.count == 2 ? range.upperBound : lo
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    /// Does the day (local calendar date) match?
    func matchesDay(dayOfMonth: Int, month: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        let dom = daysOfMonth.contains(dayOfMonth), dow = daysOfWeek.contains(weekday)
        if domRestricted && dowRestricted { return dom || dow }
        return dom && dow
    }

    /// The first fire time strictly after `date`, in `zone`. A local time that a daylight-saving jump skips fires at
    /// the end of the jump; a local time that occurs twice (the clock set back) fires once, at its first occurrence.
    /// Nil when nothing matches within 5 years (e.g. February 30).
    public func next(after date: Date, in zone: TimeZone) -> Date? {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        let sortedHours = hours.sorted(), sortedMinutes = minutes.sorted()
        var day = cal.startOfDay(for: date)
        for _ in 0..<(366 * 5) {
            let c = cal.dateComponents([.year, .month, .day, .weekday], from: day)
            if matchesDay(dayOfMonth: c.day!, month: c.month!, weekday: c.weekday! - 1) {
                for h in sortedHours {
                    for m in sortedMinutes {
                        guard let t = CronExpression.instant(cal, c.year!, c.month!, c.day!, h, m, zone), t > date
                        else { continue }
                        return t
                    }
                }
            }
            guard let next = cal.date(byAdding: .day, value: 1, to: day) else { return nil }
            day = next
        }
        return nil
    }

    /// The instant of a local wall-clock time; for a time inside a daylight-saving gap, the end of the gap.
    static func instant(_ cal: Calendar, _ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ zone: TimeZone) -> Date?
    {
        guard let t = cal.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi)) else {
            return nil
        }
        let back = cal.dateComponents([.hour, .minute, .day], from: t)
        if back.hour == h && back.minute == mi && back.day == d {
            // In a repeated hour Calendar gives the first occurrence, which is what cron does.
            return t
        }
        // Skipped by a jump forward: fire when the jump ends.
        return zone.nextDaylightSavingTimeTransition(after: t.addingTimeInterval(-4 * 3600)) ?? t
    }

    /// Every fire time in `(from, to]`.
    public func fireTimes(after from: Date, through to: Date, in zone: TimeZone, limit: Int = 1000) -> [Date] {
        var out: [Date] = []
        var t = from
        while out.count < limit, let n = next(after: t, in: zone), n <= to {
            out.append(n)
            t = n
        }
        return out
    }
}
