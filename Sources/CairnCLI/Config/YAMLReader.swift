import CairnBase
import Foundation
import Yams

/// One problem found in a configuration or policy file, with its location when known.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// A configuration or policy file that could not be used: every problem found, not just the first.
public struct ConfigError: ReportableError {
    public let code: ErrorCode
    public let problems: [ConfigProblem]
    public let hint: String?

    public init(_ code: ErrorCode = .configInvalid, problems: [ConfigProblem], hint: String? = nil) {
        self.code = code
        self.problems = problems
        self.hint = hint
    }

    public var message: String {
        problems.count == 1
            ? problems[0].description
            : "\(problems.count) problems:\n" + problems.map { "  \($0.description)" }.joined(separator: "\n")
    }
}

/// Walks a YAML mapping with typed accessors, collecting every problem with its file:line instead of
/// stopping at the first. Unknown keys are problems too (a typo must not be silently ignored).
public final class YAMLReader {
    public let file: String
    public private(set) var problems: [ConfigProblem] = []

    public init(file: String) { self.file = file }

    /// No implicit tags: the typed accessors read each scalar's text themselves. Yams' default resolver compiles
    /// seven regular expressions (and starts ICU) first, which was a tenth of the CPU of each `wal-push` that
    /// PostgreSQL starts.
    static let resolver = Resolver.basic

    /// Parses text into a root node; a syntax error becomes a problem and returns nil.
    public func parse(_ text: String) -> Node? {
        do {
            guard let node = try Yams.compose(yaml: text, Self.resolver) else { return .mapping(Node.Mapping([])) }
            return node
        } catch let e as YamlError {
            switch e {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                report(line: mark.line, "YAML syntax error: \(problem)")
            default:
                report(line: nil, "YAML error: \(e)")
            }
            return nil
        } catch {
            report(line: nil, "YAML error: \(error)")
            return nil
        }
    }

    public func report(line: Int?, _ message: String) {
        problems.append(ConfigProblem(file: file, line: line, message: message))
    }

    public func report(_ node: Node?, _ message: String) { report(line: node?.mark?.line, message) }

    /// A mapping section; reports a problem when present but not a mapping.
    public func section(_ node: Node?, path: String, allowed: [String]) -> Section? {
        guard let node else { return nil }
        guard let m = node.mapping else {
            report(node, "\(path) must be a mapping of keys to values")
            return nil
        }
        let s = Section(reader: self, path: path, node: node, mapping: m)
        for (k, _) in m {
            guard let key = k.string else { report(k, "\(path) has a key that is not a string"); continue }
            if !allowed.contains(key) {
                let place = path.isEmpty ? "the top level" : path
                if let meant = Self.nearest(key, in: allowed) {
                    report(k, "unknown key \"\(key)\" in \(place): did you mean \"\(meant)\"?")
                } else {
                    report(
                        k,
                        "unknown key \"\(key)\" in \(place) (known keys: \(allowed.sorted().joined(separator: ", ")))")
                }
            }
        }
        return s
    }

    /// The known key a mistyped `key` most likely meant: the closest by edit distance (a swap of two neighbours
    /// counts once), if it is close enough to be a typo (a third of the key's length, at least 1); nil otherwise.
    static func nearest(_ key: String, in known: [String]) -> String? {
        let typed = Array(key.lowercased())
        let limit = max(1, typed.count / 3)
        let scored = known.sorted().map { ($0, editDistance(typed, Array($0.lowercased()))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= limit else { return nil }
        return best.0
    }

    /// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions of neighbours.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }

    /// A mapping's typed accessors.
    public struct Section {
        let reader: YAMLReader
        public let path: String
        public let node: Node
        let mapping: Node.Mapping

        func full(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        /// The raw node of a key.
        public func node(_ key: String) -> Node? { mapping[Node(key)] }

        public func line(_ key: String) -> Int? { node(key)?.mark?.line ?? node.mark?.line }

        public func string(_ key: String) -> String? {
            guard let n = node(key) else { return nil }
            guard let s = n.scalar?.string else { reader.report(n, "\(full(key)) must be a text value"); return nil }
            return s
        }

        public func int(_ key: String, range: ClosedRange<Int>? = nil) -> Int? {
            guard let n = node(key) else { return nil }
            guard let v = n.int else { reader.report(n, "\(full(key)) must be a whole number"); return nil }
            if let range, !range.contains(v) {
                reader.report(n, "\(full(key)) must be between \(range.lowerBound) and \(range.upperBound), not \(v)")
                return nil
            }
            return v
        }

        /// YAML's plain booleans: true/yes/on and false/no/off, in any case.
        public func bool(_ key: String) -> Bool? {
            guard let n = node(key) else { return nil }
            guard let s = n.scalar, s.style == .plain || s.style == .any,
                let v = ["true": true, "yes": true, "on": true, "false": false, "no": false, "off": false][
                    s.string.lowercased()]
            else {
                reader.report(n, "\(full(key)) must be true or false")
                return nil
            }
            return v
        }

        /// A size such as `16MiB`, or a plain number of bytes.
        public func size(_ key: String, min: Int64? = nil) -> Int64? {
            guard let n = node(key) else { return nil }
            guard let text = n.scalar?.string, let v = Units.parseSize(text) else {
                reader.report(n, "\(full(key)) must be a size such as 16MiB or 1GiB")
                return nil
            }
            if let min, v < min {
                reader.report(n, "\(full(key)) must be at least \(Units.formatBytes(min)), not \(text)")
                return nil
            }
            return v
        }

        /// A duration such as `30d`, `90s`, `1h30m`. Returns seconds.
        public func duration(_ key: String) -> Double? {
            guard let n = node(key) else { return nil }
            guard let text = n.scalar?.string, let v = Units.parseDuration(text), v > 0 else {
                reader.report(n, "\(full(key)) must be a duration such as 90s, 10m, 12h or 30d")
                return nil
            }
            return v
        }

        /// One of a fixed set of words.
        public func choice(_ key: String, _ allowed: [String]) -> String? {
            guard let s = string(key) else { return nil }
            guard allowed.contains(s) else {
                reader.report(
                    node(key),
                    "\(full(key)) must be one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", ")), not \"\(s)\"")
                return nil
            }
            return s
        }

        public func section(_ key: String, allowed: [String]) -> Section? {
            reader.section(node(key), path: full(key), allowed: allowed)
        }

        public func require(_ key: String, _ why: String = "") -> Bool {
            if node(key) == nil {
                reader.report(node, "\(full(key)) is required\(why.isEmpty ? "" : ": \(why)")")
                return false
            }
            return true
        }
    }
}
