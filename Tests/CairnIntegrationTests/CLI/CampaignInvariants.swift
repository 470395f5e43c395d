import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

/// The invariants every crash and fault trial ends with, checked with cairn itself and with direct reads of the
/// repository (never through a fault proxy):
///
/// 1. what `cairn list` shows is exactly the set of backups with a `manifest.json`;
/// 2. every committed backup is complete (each object its manifest names is there, at its stored size) and
///    `cairn verify` passes (every object read against its manifest or its own trailer, WAL continuity);
/// 3. no half-written object is visible: every data object of an uncommitted backup decodes with its trailer too;
/// 4. every WAL file PostgreSQL considers archived (`pg_stat_archiver.last_archived_wal` and the `.done` files
///    in `pg_wal/archive_status`) is in the repository (and, by 2, verifies).
struct Invariants {
    let cluster: ScratchCluster
    let config: String
    let repo: any Repository

    /// `config` must reach the repository without a fault proxy (default: the cluster's own).
    init(_ c: ScratchCluster, config: String? = nil) throws {
        cluster = c
        self.config = config ?? c.config!
        repo = try DirectRepository.open(config: self.config, localRoot: c.dir + "/repo")
    }

    /// Checks everything; returns the committed backup ids. `walFloor`: skip acknowledged WAL older than the
    /// oldest committed backup's start (after `expire`, which deletes WAL no kept backup needs).
    @discardableResult
    func check(_ ctx: String, walFloor: Bool = false) throws -> [String] {
        let list = try Run.cairnAsPostgres(["--config", config, "list", "--json"])
        #expect(list.status == 0, "\(ctx): cairn list: \(list.stderr)")
        let listed = ((try? JSONSerialization.jsonObject(with: Data(list.stdout.utf8))) as? [[String: Any]] ?? [])
            .compactMap { $0["id"] as? String }
        let keys = try repo.list(prefix: "backups/").map(\.key)
        let withManifest = keys.filter { $0.hasSuffix("/manifest.json") }.map { String($0.split(separator: "/")[1]) }
        #expect(
            Set(listed) == Set(withManifest),
            "\(ctx): cairn list shows \(listed.sorted()), manifests exist for \(withManifest.sorted())")

        let catalog = try Catalog.load(from: repo)
        #expect(catalog.damagedManifests.isEmpty, "\(ctx): damaged manifests \(catalog.damagedManifests)")
        for b in catalog.backups {
            for o in b.allObjects {
                let h = try repo.head(o.key)
                #expect(
                    h?.size == o.digest.storedSize,
                    "\(ctx): committed backup \(b.id): \(o.key) is \(h.map { "\($0.size) bytes, not \(o.digest.storedSize)" } ?? "missing")"
                )
            }
        }
        let verify = try Run.cairnAsPostgres(["--config", config, "verify"])
        #expect(
            verify.status == 0, "\(ctx): cairn verify (\(verify.status)): \(verify.stdout.suffix(2000))\(verify.stderr)"
        )

        // Objects of interrupted backups are garbage for expire, but still never half-written.
        let pipeline = Pipeline()
        for id in catalog.uncommitted {
            for o in catalog.backupObjects[id] ?? [] where o.key.hasSuffix(".zst") {
                do { _ = try pipeline.load(repo, key: o.key) { _ in } } catch {
                    Issue.record("\(ctx): \(o.key) of uncommitted backup \(id) is visible but not whole: \(error)")
                }
            }
        }

        let floor = walFloor ? catalog.backups.first?.start.wal : nil
        var acknowledged = Set<String>()
        let last = try cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if !last.isEmpty { acknowledged.insert(last) }
        let status = cluster.data + "/pg_wal/archive_status"
        for f in (try? FileManager.default.contentsOfDirectory(atPath: status)) ?? [] where f.hasSuffix(".done") {
            acknowledged.insert(String(f.dropLast(5)))
        }
        for name in acknowledged.sorted() {
            guard let file = WALFileName(name) else { continue }
            if let floor, name.count >= 24, String(name.prefix(24)) < floor { continue }
            #expect(
                try repo.head(Layout.walKey(file)) != nil,
                "\(ctx): PostgreSQL considers \(name) archived, but the repository does not have it")
        }
        return listed
    }
}

/// A private `fault_proxy.py` in front of an S3 server (moto or SeaweedFS) that a test can `kill -9` and start again
/// on the same port.
///
/// Why not kill the S3 emulator itself: moto keeps every bucket in memory and is shared by all tests, so a
/// `kill -9` of moto would lose everything (no real S3 loses acknowledged objects) and break other tests. What a
/// client can observe of a crashed S3 server is its endpoint: connections reset mid-request, new connections
/// refused, requests in flight lost (whether they were applied or not), then the service back with whatever it
/// had acknowledged. Killing the endpoint process the client talks to gives exactly that.
final class CrashableEndpoint: @unchecked Sendable {
    let port = LocalPort.free()
    let server: S3Server
    private var pid: pid_t = 0
    private(set) var crashes = 0

    init(server: S3Server = .moto) throws {
        self.server = server
        try start()
    }
    deinit { if pid > 0 { kill(pid, SIGTERM); Run.wait(pid) } }

    var endpoint: String { "http://127.0.0.1:\(port)" }

    func start() throws {
        let upstream = URL(string: server.endpoint)!
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../scripts/fault_proxy.py").standardized.path
        pid = try Run.spawn(
            "/usr/bin/env",
            [
                "python3", script, "--listen", "127.0.0.1:\(port)",
                "--upstream", "127.0.0.1:\(upstream.port!)", "--quiet"
            ])
        for _ in 0..<100 {
            if try Run.program("/usr/bin/curl", ["-sf", "-o", "/dev/null", endpoint + "/__fault/rules"]).status == 0 {
                return
            }
            usleep(100_000)
        }
        throw TestFailure("the endpoint on port \(port) did not come back")
    }

    /// `kill -9` of the endpoint process; it stays down until `start()`.
    func crash() {
        kill(pid, SIGKILL)
        Run.wait(pid)
        pid = 0
        crashes += 1
    }
}

/// Writes a cairn configuration for an S3 repository of `server` reached through `endpoint` (plain HTTP: the server
/// or a proxy in front of it), owned by postgres.
enum CampaignConfig {
    static func s3(
        dir: String, name: String = "cairn.yaml", conninfo: String, endpoint: String, prefix: String,
        limits: [String] = ["request_timeout: 60s", "retries: 4"], extra: String = "", server: S3Server = .moto
    ) throws -> String {
        let creds = dir + "/aws-credentials"
        try server.writeCredentials(to: creds)
        let path = dir + "/" + name
        try """
        cluster:
          connection: "\(conninfo)"
          bin_directory: \(TestCluster.binDirectory)
        repository:
          type: s3
          bucket: \(server.bucket)
          prefix: \(prefix)
          endpoint: \(endpoint)
          region: \(TestEnvironment.value("CAIRN_TEST_S3_REGION"))
          uri_style: path
          credentials_file: \(creds)
        limits:
          part_size: 5MiB
        \((["bundle_size: 2MiB"] + limits).map { "  " + $0 }.joined(separator: "\n"))
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres:postgres \(creds) \(path) && chmod 600 \(creds) && chmod 644 \(path)")
        return path
    }
}

/// The running processes whose command line contains every one of `words` (for the archiver's wal-push).
enum Processes {
    static func find(_ words: [String]) -> [pid_t] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), pid != me,
                let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { return nil }
            let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard args.first == Run.installedCairn else { return nil }
            return words.allSatisfy { w in args.contains(w) } ? pid : nil
        }
    }

    static func alive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        return !stat.contains(") Z ")
    }
}
