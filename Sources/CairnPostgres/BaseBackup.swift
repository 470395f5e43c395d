import CLibPQ
import CairnBase
import Foundation

/// A physical base backup streamed over a replication connection with `BASE_BACKUP` (PostgreSQL 15+).
///
/// PostgreSQL 15 sends every archive (the main data directory and each tablespace, as tar), progress reports and
/// the backup manifest inside one COPY stream, so a single connection delivers the whole backup in order, with
/// no temporary files and no pipes. WAL is not included: it reaches the repository through archiving.
public final class BaseBackupStream {
    /// What arrives in the COPY stream.
    public enum Event {
        /// A new archive starts: `base.tar` for the data directory, `<oid>.tar` for a tablespace at `location`.
        case archive(name: String, location: String?)
        /// Bytes of the current archive, or of the manifest after `manifestStart`.
        case data(UnsafeRawBufferPointer)
        /// The backup manifest follows.
        case manifestStart
        /// Bytes sent so far.
        case progress(Int64)
        /// PostgreSQL's estimate of the bytes the backup will send (all tablespaces), before any data.
        case estimate(Int64)
    }

    /// A tablespace the server reported (the data directory has no oid).
    public struct Tablespace: Sendable, Codable, Equatable {
        public var oid: UInt32?
        public var location: String?
    }

    public struct Result: Sendable {
        public var startLSN: LSN
        public var startTimeline: UInt32
        public var stopLSN: LSN
        public var stopTimeline: UInt32
        public var tablespaces: [Tablespace]
    }

    private let connection: PGConnection

    /// Opens a physical replication connection.
    public init(conninfo: String) throws {
        do {
            connection = try PGConnection(conninfo: conninfo, overrides: ["replication": "true"])
        } catch let e as CairnError where e.code == .pgAuth {
            throw CairnError(
                .pgAuth, e.message,
                hint:
                    "the backup needs a replication connection: the user needs the REPLICATION attribute and pg_hba.conf a `replication` line for it"
            )
        }
    }

    /// Runs the backup, passing every event to `handler` in order.
    public func run(label: String, fastCheckpoint: Bool = true, handler: (Event) throws -> Void) throws -> Result {
        let quoted = label.replacingOccurrences(of: "'", with: "''")
        let cmd =
            "BASE_BACKUP (LABEL '\(quoted)', CHECKPOINT '\(fastCheckpoint ? "fast" : "spread")', WAIT false, PROGRESS true, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')"
        guard PQsendQuery(connection.conn, cmd) == 1 else { throw failure("BASE_BACKUP could not be sent") }
        let start = try position("start")
        let tablespaces = try readTablespaces(handler)
        try readCopyStream(handler)
        let stop = try position("end")
        try awaitCompletion()
        return Result(
            startLSN: start.lsn, startTimeline: start.timeline, stopLSN: stop.lsn, stopTimeline: stop.timeline,
            tablespaces: tablespaces)
    }

    /// The start or end position and timeline (a one-row result).
    private func position(_ which: String) throws -> (lsn: LSN, timeline: UInt32) {
        let row = try nextTuples("BASE_BACKUP \(which)")
        guard let s = row.first, s.count >= 2, let lsn = LSN(s[0] ?? ""), let tli = UInt32(s[1] ?? "") else {
            throw CairnError(.pgQuery, "BASE_BACKUP sent an unexpected \(which) position")
        }
        return (lsn, tli)
    }

    /// The tablespaces, with the estimated total size passed on as an event.
    private func readTablespaces(_ handler: (Event) throws -> Void) throws -> [Tablespace] {
        let tsRows = try nextTuples("BASE_BACKUP tablespaces")
        let tablespaces = tsRows.map {
            Tablespace(
                oid: $0.first.flatMap { $0.flatMap { UInt32($0) } },
                location: $0.count > 1 ? $0[1] : nil)
        }
        // With PROGRESS, each tablespace row carries its size in kB.
        let sizes = tsRows.compactMap { $0.count > 2 ? $0[2].flatMap { Int64($0) } : nil }
        if !sizes.isEmpty { try handler(.estimate(sizes.reduce(0, +) * 1024)) }
        return tablespaces
    }

    /// The COPY stream: every archive, its data, the manifest and progress messages, as events.
    private func readCopyStream(_ handler: (Event) throws -> Void) throws {
        let conn = connection.conn
        guard let copy = PQgetResult(conn) else { throw failure("BASE_BACKUP ended before its data") }
        let status = PQresultStatus(copy)
        PQclear(copy)
        guard status == PGRES_COPY_OUT else { throw failure("BASE_BACKUP did not start its data stream") }
        while true {
            var buf: UnsafeMutablePointer<CChar>?
            let n = PQgetCopyData(conn, &buf, 0)
            if n == -1 { break }
            if n < -1 { throw failure("the backup stream broke") }
            guard let b = buf else { continue }
            defer { PQfreemem(b) }
            try dispatch(UnsafeRawBufferPointer(start: b, count: Int(n)), handler)
        }
    }

    /// One COPY message as an event: `n` a new archive, `d` data, `m` the manifest begins, `p` progress.
    private func dispatch(_ msg: UnsafeRawBufferPointer, _ handler: (Event) throws -> Void) throws {
        guard let type = msg.first else { return }
        let body = UnsafeRawBufferPointer(rebasing: msg[1...])
        switch type {
        case UInt8(ascii: "n"):
            let parts = body.split(separator: 0, omittingEmptySubsequences: false)
            let name = parts.count > 0 ? String(decoding: parts[0], as: UTF8.self) : ""
            let loc = parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : ""
            try handler(.archive(name: name, location: loc.isEmpty ? nil : loc))
        case UInt8(ascii: "d"):
            try handler(.data(body))
        case UInt8(ascii: "m"):
            try handler(.manifestStart)
        case UInt8(ascii: "p"):
            if body.count >= 8 {
                try handler(.progress(Int64(bigEndian: body.loadUnaligned(as: Int64.self))))
            }
        default:
            throw CairnError(.pgQuery, "BASE_BACKUP sent an unknown message type \(type)")
        }
    }

    /// Reads the results up to command completion; an error among them fails the backup.
    private func awaitCompletion() throws {
        while let r = PQgetResult(connection.conn) {
            let st = PQresultStatus(r)
            let msg = String(cString: PQresultErrorMessage(r))
            PQclear(r)
            if st == PGRES_FATAL_ERROR {
                throw CairnError(.pgQuery, "BASE_BACKUP failed: \(PGConnection.firstLine(msg))")
            }
        }
    }

    private func nextTuples(_ what: String) throws -> [[String?]] {
        let conn = connection.conn
        guard let r = PQgetResult(conn) else { throw failure("\(what): no result") }
        defer { PQclear(r) }
        guard PQresultStatus(r) == PGRES_TUPLES_OK else {
            throw CairnError(
                .pgQuery, "\(what) failed: \(PGConnection.firstLine(String(cString: PQresultErrorMessage(r))))",
                hint: "the server log has details; check max_wal_senders and that no other backup blocks this one")
        }
        var rows: [[String?]] = []
        for i in 0..<PQntuples(r) {
            rows.append(
                (0..<PQnfields(r)).map { f in PQgetisnull(r, i, f) == 1 ? nil : String(cString: PQgetvalue(r, i, f)) })
        }
        return rows
    }

    private func failure(_ what: String) -> CairnError {
        let msg = PGConnection.firstLine(String(cString: PQerrorMessage(connection.conn)))
        if PQstatus(connection.conn) != CONNECTION_OK {
            return CairnError(.pgUnreachable, "\(what): lost the connection to PostgreSQL (\(msg))")
        }
        return CairnError(.pgQuery, "\(what): \(msg)")
    }
}
