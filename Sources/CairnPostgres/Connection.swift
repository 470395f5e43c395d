import CLibPQ
import CairnBase
import Foundation

/// A libpq connection. It may move between threads, but must be used by one thread at a time (callers
/// serialise their use, e.g. one operation's sequential steps), hence the unchecked conformance.
public final class PGConnection: @unchecked Sendable {
    let conn: OpaquePointer

    /// Connects with a libpq connection string (`host=… port=… user=… dbname=…`, or a `postgresql://` URI).
    /// `overrides` replace or add keywords (e.g. `["dbname": "template1", "replication": "database"]`).
    public init(conninfo: String, overrides: [String: String] = [:]) throws {
        try PGConnection.requireLibpq()
        var keys: [String] = ["fallback_application_name"]
        var values: [String] = ["cairn"]
        keys.append("dbname")
        values.append(conninfo)
        for (k, v) in overrides.sorted(by: { $0.key < $1.key }) {
            keys.append(k)
            values.append(v)
        }
        // PQconnectdbParams with expand_dbname=1 parses `conninfo` in the dbname slot; later keywords win.
        let kc = keys.map { strdup($0) }
        let vc = values.map { strdup($0) }
        defer { kc.forEach { free($0) }; vc.forEach { free($0) } }
        var kp: [UnsafePointer<CChar>?] = kc.map { UnsafePointer($0) } + [nil]
        var vp: [UnsafePointer<CChar>?] = vc.map { UnsafePointer($0) } + [nil]
        guard let c = PQconnectdbParams(&kp, &vp, 1) else {
            throw CairnError(.internal, "libpq could not allocate a connection")
        }
        conn = c
        if PQstatus(conn) != CONNECTION_OK {
            // deinit runs PQfinish for a fully initialised instance that throws.
            let msg = PGConnection.firstLine(String(cString: PQerrorMessage(conn)))
            throw PGConnection.classifyConnectError(msg)
        }
    }

    deinit { PQfinish(conn) }

    /// libpq is opened on first use (see `cairn_lazy.h`); nil when it is loaded, otherwise the error to report.
    private static let libpqMissing: CairnError? = clibpq_load().map {
        CairnError(
            .pgUnreachable, "cannot load libpq, which connecting to PostgreSQL needs: \(String(cString: $0))",
            hint: "install it: apt-get install libpq5")
    }

    /// Throws when libpq cannot be loaded.
    static func requireLibpq() throws {
        if let e = libpqMissing { throw e }
    }

    /// The server's version number, e.g. 150018.
    public var serverVersion: Int { Int(PQserverVersion(conn)) }

    /// Runs a query (with optional text parameters `$1…`) and returns rows of text values (nil for NULL).
    public func query(_ sql: String, _ params: [String?] = []) throws -> [[String?]] {
        let cparams = params.map { $0.map { strdup($0) } ?? nil }
        defer { cparams.forEach { free($0) } }
        let ptrs: [UnsafePointer<CChar>?] = cparams.map { $0.map { UnsafePointer($0) } }
        guard
            let res = ptrs.withUnsafeBufferPointer({
                PQexecParams(conn, sql, Int32(params.count), nil, $0.baseAddress, nil, nil, 0)
            })
        else {
            throw CairnError(.pgQuery, "query failed: \(PGConnection.firstLine(String(cString: PQerrorMessage(conn))))")
        }
        defer { PQclear(res) }
        let status = PQresultStatus(res)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            let msg = PGConnection.firstLine(String(cString: PQresultErrorMessage(res)))
            if PQstatus(conn) != CONNECTION_OK {
                throw CairnError(.pgUnreachable, "lost the connection to PostgreSQL: \(msg)")
            }
            throw CairnError(.pgQuery, "query failed: \(msg)")
        }
        var rows: [[String?]] = []
        let n = PQntuples(res), m = PQnfields(res)
        rows.reserveCapacity(Int(n))
        for r in 0..<n {
            var row: [String?] = []
            for f in 0..<m {
                row.append(PQgetisnull(res, r, f) == 1 ? nil : String(cString: PQgetvalue(res, r, f)))
            }
            rows.append(row)
        }
        return rows
    }

    /// The first column of the first row.
    public func scalar(_ sql: String, _ params: [String?] = []) throws -> String? {
        try query(sql, params).first?.first ?? nil
    }

    static func firstLine(_ s: String) -> String {
        let lines = s.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        // libpq prefixes messages with "connection to server ... failed:"; keep the informative part.
        return lines.first.map { l in
            var t = l
            if t.hasPrefix("FATAL:") { t = String(t.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
            return t
        } ?? "unknown error"
    }

    static func classifyConnectError(_ msg: String) -> CairnError {
        let lower = msg.lowercased()
        if lower.contains("password authentication failed") || lower.contains("no password supplied")
            || lower.contains("peer authentication failed") || lower.contains("no pg_hba.conf entry")
            || lower.contains("role") && lower.contains("does not exist")
        {
            return CairnError(
                .pgAuth, "PostgreSQL refused the connection: \(msg)",
                hint: "check cluster.connection (user, password via ~/.pgpass or PGPASSFILE) and pg_hba.conf")
        }
        return CairnError(
            .pgUnreachable, "cannot connect to PostgreSQL: \(msg)",
            hint: "check that the server runs and that cluster.connection (host, port) points at it")
    }
}
