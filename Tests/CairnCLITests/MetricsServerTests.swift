import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnCLI

/// The daemon's `/metrics` and `/healthz` endpoint: its answers, and a real listening socket.
@Suite struct MetricsServerTests {
    static func server(port: UInt16 = 0, healthy: Bool = true) -> MetricsServer {
        MetricsServer(host: "127.0.0.1", port: port, collect: { "cairn_up 1\n" }, healthy: { healthy })
    }

    static func answer(_ server: MetricsServer, _ head: String) async -> String {
        String(decoding: await server.response(to: Array(head.utf8)), as: UTF8.self)
    }

    @Test func answersScrapesProbesAndMistakes() async {
        let s = Self.server()
        let metrics = await Self.answer(s, "GET /metrics?x=1 HTTP/1.1\r\nHost: a")
        #expect(metrics.hasPrefix("HTTP/1.1 200 OK\r\n") && metrics.hasSuffix("\r\n\r\ncairn_up 1\n"))
        #expect(
            metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n")
                && metrics.contains("Content-Length: 11\r\n"))
        #expect(metrics.contains("Connection: close\r\n"))
        let head = await Self.answer(s, "HEAD /metrics HTTP/1.0")
        #expect(head.contains("Content-Length: 11\r\n") && head.hasSuffix("\r\n\r\n"))
        #expect(await Self.answer(s, "GET /healthz HTTP/1.1").hasSuffix("\r\n\r\nok\n"))
        #expect(
            await Self.answer(Self.server(healthy: false), "GET /healthz HTTP/1.1").hasPrefix(
                "HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(await Self.answer(s, "GET / HTTP/1.1").hasPrefix("HTTP/1.1 404 "))
        #expect(await Self.answer(s, "POST /metrics HTTP/1.1").hasPrefix("HTTP/1.1 405 "))
        for junk in ["", "GET", "GET /metrics", "GET /metrics SPDY/3", "\u{1}\u{2}"] {
            #expect(await Self.answer(s, junk).hasPrefix("HTTP/1.1 400 "), "\(junk)")
        }
    }

    /// Runs a client command on its own thread: the server needs Swift's cooperative threads, which a blocking
    /// call here would hold (two on this machine, shared with every other test).
    /// Retried until it gets an answer: while other tests hold both threads, the server cannot answer in time.
    static func client(_ command: String) async throws -> String {
        for _ in 0..<60 {
            let out = try await Blocking.run { try Run.shell(command, check: false).stdout }
            if !out.isEmpty { return out }
            try await Task.sleep(for: .milliseconds(500))
        }
        return ""
    }

    @Test func servesOverTCPAndStopsWhenCancelled() async throws {
        let port = UInt16(ScratchCluster.freePort())
        let s = Self.server(port: port)
        let task = Task { try await s.run() }
        defer { task.cancel() }
        let curl = "curl -s --max-time 10"
        #expect(try await Self.client("\(curl) -f http://127.0.0.1:\(port)/metrics") == "cairn_up 1\n")
        // A request that arrives in pieces, and one that is not HTTP.
        let tcp = "exec 3<>/dev/tcp/127.0.0.1/\(port)"
        let split = try await Self.client(
            "\(tcp); printf 'GET /healthz HT' >&3; sleep 0.2; printf 'TP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; timeout 10 cat <&3"
        )
        #expect(split.hasSuffix("\r\n\r\nok\n"))
        let junk = try await Self.client("\(tcp); printf 'junk\\r\\n\\r\\n' >&3; timeout 10 cat <&3")
        #expect(junk.hasPrefix("HTTP/1.1 400 "))
        // A second server on the same port: a one-line error with the setting to change.
        let taken = await #expect(throws: CairnError.self) { try await Self.server(port: port).run() }
        #expect(taken?.code == .configInvalid && taken?.hint?.contains("metrics.listen") == true)
        task.cancel()
        _ = await task.result
        #expect(
            try await Blocking.run {
                try Run.shell("\(curl) -o /dev/null -w %{http_code} http://127.0.0.1:\(port)/metrics", check: false)
                    .stdout
            } == "000",
            "the port is closed once the server stopped")
    }
}
