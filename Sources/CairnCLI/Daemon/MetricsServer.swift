import CairnBase
import FlyingSocks
import Foundation
import ServiceLifecycle

/// `/metrics` and `/healthz` over HTTP inside the daemon's service group: FlyingSocks' non-blocking sockets and
/// just enough HTTP/1.1 for a scraper (one GET or HEAD per connection, answered with `Connection: close`). A
/// full HTTP server library would do more than this needs, and FlyingFox's also links FoundationNetworking, which
/// makes every cairn process load libcurl and its dozens of libraries at start (each `wal-push` too).
final class MetricsServer: Service, @unchecked Sendable {
    let host: String
    let port: UInt16
    let collect: @Sendable () async -> String
    let healthy: @Sendable () -> Bool

    /// The most a request head may take before the connection is dropped.
    static let headLimit = 16 << 10
    /// How long a client may take to send its request.
    static let requestTimeout: Duration = .seconds(10)

    init(
        host: String, port: UInt16, collect: @escaping @Sendable () async -> String,
        healthy: @escaping @Sendable () -> Bool
    ) {
        self.host = host
        self.port = port
        self.collect = collect
        self.healthy = healthy
    }

    func run() async throws {
        let pool: some AsyncSocketPool = .make()
        try await pool.prepare()
        let socket = try Socket(domain: AF_INET)
        defer { try? socket.close() }
        do {
            try socket.setValue(true, for: .localAddressReuse)
            try socket.bind(to: .inet(ip4: host, port: port))
            try socket.listen()
        } catch {
            throw CairnError(
                .configInvalid, "cannot serve metrics on \(host):\(port): \(error)",
                hint: "another process may hold the port: set metrics.listen in cairn.yaml, or --listen, to a free one",
                cause: error)
        }
        let listener = try AsyncSocket(socket: socket, pool: pool)
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await pool.run() }
                    group.addTask {
                        try await withThrowingDiscardingTaskGroup { connections in
                            for try await client in listener.sockets {
                                connections.addTask { await self.serve(client) }
                            }
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch  where Task.isShuttingDownGracefully || Task.isCancelled {
            // Shutting down cancels the accept loop and the socket pool: that is the way out.
        }
    }

    /// Answers one request (400 for one that is not HTTP), within ``requestTimeout``; a client that sends more than
    /// ``headLimit`` or nothing complete in time is disconnected without an answer.
    func serve(_ client: AsyncSocket) async {
        defer { try? client.close() }
        try? await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let head = try await Self.readHead(client)
                try await client.write(await self.response(to: head))
            }
            group.addTask {
                try await Task.sleep(for: Self.requestTimeout)
                throw CancellationError()
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// The request line and headers, up to the blank line.
    static func readHead(_ client: AsyncSocket) async throws -> [UInt8] {
        var head: [UInt8] = []
        while true {
            let chunk = try await client.read(atMost: 4096)
            if chunk.isEmpty { throw SocketError.disconnected }
            head += chunk
            if let end = head.firstRange(of: [13, 10, 13, 10]) { return Array(head[..<end.lowerBound]) }
            if head.count > headLimit { throw SocketError.disconnected }
        }
    }

    /// The answer to a request head.
    func response(to head: [UInt8]) async -> Data {
        let requestLine = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return Self.message(400, "Bad Request", "bad request\n")
        }
        let method = parts[0], path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard method == "GET" || method == "HEAD" else { return Self.message(405, "Method Not Allowed", "only GET\n") }
        let body: String, status: (Int, String), type: String
        switch path {
        case "/metrics":
            (status, type, body) = ((200, "OK"), "text/plain; version=0.0.4; charset=utf-8", await collect())
        case "/healthz":
            (status, type, body) =
                healthy()
                ? ((200, "OK"), "text/plain", "ok\n")
                : ((503, "Service Unavailable"), "text/plain", "scheduler loop stalled\n")
        default:
            return Self.message(404, "Not Found", "not found: try /metrics or /healthz\n")
        }
        return Self.message(status.0, status.1, body, type: type, withBody: method == "GET")
    }

    static func message(
        _ code: Int, _ reason: String, _ body: String, type: String = "text/plain",
        withBody: Bool = true
    ) -> Data {
        let bytes = Array(body.utf8)
        var out = Array(
            ("HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\n"
                + "Connection: close\r\n\r\n").utf8)
        if withBody { out += bytes }
        return Data(out)
    }
}
