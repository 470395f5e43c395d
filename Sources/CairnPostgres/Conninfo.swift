import CLibPQ
import CairnBase
import Foundation

/// libpq connection strings, parsed by libpq itself (keyword form and URIs).
public struct Conninfo: Sendable, Equatable {
    /// Keyword/value pairs that were set.
    public var options: [String: String]

    /// Parses a connection string with `PQconninfoParse`.
    public init(_ text: String) throws {
        try PGConnection.requireLibpq()
        var err: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(text, &err) else {
            let msg = err.map { String(cString: $0) } ?? "invalid connection string"
            if let err { PQfreemem(err) }
            throw CairnError(
                .pgConfig,
                "cluster.connection is not a valid libpq connection string: \(msg.trimmingCharacters(in: .whitespacesAndNewlines))"
            )
        }
        defer { PQconninfoFree(parsed) }
        var out: [String: String] = [:]
        var p = parsed
        while let kw = p.pointee.keyword {
            if let v = p.pointee.val { out[String(cString: kw)] = String(cString: v) }
            p += 1
        }
        options = out
    }

    /// The same connection to another database, with the password removed (tools get it via `PGPASSWORD`, never
    /// on their command line). Returns the keyword string and the environment to pass.
    public func forTool(database: String? = nil) -> (conninfo: String, environment: [String: String]) {
        var o = options
        var env: [String: String] = [:]
        if let pw = o.removeValue(forKey: "password") { env["PGPASSWORD"] = pw }
        if let database { o["dbname"] = database }
        let text = o.sorted { $0.key < $1.key }.map { "\($0.key)=\(Conninfo.quote($0.value))" }.joined(separator: " ")
        return (text, env)
    }

    /// The connection string with another database (password kept: for libpq connections in-process).
    public func with(database: String) -> String {
        var o = options
        o["dbname"] = database
        return o.sorted { $0.key < $1.key }.map { "\($0.key)=\(Conninfo.quote($0.value))" }.joined(separator: " ")
    }

    /// Quotes a value for a keyword/value connection string.
    public static func quote(_ v: String) -> String {
        if !v.isEmpty && !v.contains(where: { $0 == " " || $0 == "'" || $0 == "\\" || $0 == "=" }) { return v }
        return "'" + v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
