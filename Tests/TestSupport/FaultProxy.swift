import Foundation

/// `scripts/fault_proxy.py` in front of a test S3 server's plain-HTTP endpoint (moto unless told otherwise):
/// scripted 5xx, dropped and stalled connections, truncated bodies, lost acknowledgements.
public final class FaultProxy: @unchecked Sendable {
    public let port: Int
    private let pid: pid_t

    public init(server: S3Server = .moto) throws {
        let upstream = URL(string: server.endpoint)!
        let portFile = try TestEnvironment.tempDirectory("proxy") + "/port"
        let script = SourceTree.path("scripts/fault_proxy.py")
        pid = try Run.spawn(
            "/usr/bin/env",
            [
                "python3", script, "--listen", "127.0.0.1:0", "--upstream",
                "127.0.0.1:\(upstream.port!)", "--port-file", portFile, "--quiet"
            ])
        var p: Int?
        for _ in 0..<100 {
            if let t = try? String(contentsOfFile: portFile, encoding: .utf8),
                let v = Int(t.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                p = v
                break
            }
            usleep(100_000)
        }
        guard let p else {
            kill(pid, SIGKILL)
            throw TestFailure("the fault proxy did not start")
        }
        port = p
    }

    deinit { stop() }

    public var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }

    public func stop() {
        kill(pid, SIGTERM)
        Run.wait(pid)
    }

    /// Adds rules (JSON, see the script's docstring).
    public func script(_ rulesJSON: String) throws {
        let r = try Run.program(
            "/usr/bin/curl",
            [
                "-sf", "-X", "POST", "-H", "Content-Type: application/json",
                "--data-binary", rulesJSON, "http://127.0.0.1:\(port)/__fault/script"
            ])
        guard r.status == 0 else { throw TestFailure("fault proxy refused the script: \(r.stdout)\(r.stderr)") }
    }

    /// The requests handled so far.
    public func log() throws -> [[String: Any]] {
        let r = try Run.program("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/__fault/log"])
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    public func reset() throws {
        _ = try Run.program("/usr/bin/curl", ["-sf", "-X", "POST", "http://127.0.0.1:\(port)/__fault/reset"])
    }
}
