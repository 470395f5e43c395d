import CairnBase
import Foundation
import TestSupport
import Testing

/// Replay of more than 200 archived segments through `wal-fetch`, with and without prefetch. The figures are
/// printed and appended to $CAIRN_TEST_STATE/measurements.txt; the test asserts only correctness.
@Suite(.enabled(if: TestEnvironment.integrationEnabled), .serialized) struct WalFetchThroughputTests {
    @Test func replayOfTwoHundredSegments() throws {
        let repo = RepoKind.s3
        let c = try ScratchCluster(name: "replay-\(repo)", settings: ["max_wal_size = 4GB"]) {
            try TestRepository.config(repo, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t (id int, v text)")
        #expect(try c.cairn(["backup"]).status == 0)
        let segments = 210
        for i in 0..<segments {
            // About 1 MiB of WAL per segment, then a switch.
            try c.psql(
                "INSERT INTO t SELECT \(i), md5(g::text) || md5((g + \(i))::text) FROM generate_series(1, 6000) g; SELECT pg_switch_wal()"
            )
        }
        try c.switchAndWaitForArchive(timeout: 600)
        let expected = try c.psql("SELECT count(*) FROM t")

        var lines: [String] = []
        for prefetch in [16, 0] {
            let conf = try String(contentsOfFile: c.config!, encoding: .utf8) + "\n"  // limits already present
            let withPrefetch = conf.replacingOccurrences(
                of: "  retries: 4\n", with: "  retries: 4\n  prefetch: \(prefetch)\n")
            let configPath = c.dir + "/cairn-prefetch-\(prefetch).yaml"
            try withPrefetch.write(toFile: configPath, atomically: true, encoding: .utf8)
            try Run.shell("chown postgres \(configPath)")
            let dir = c.dir + "/replay-\(prefetch)"
            try Run.shell("mkdir -p \(dir) && chown postgres \(dir)")
            let r = try Run.cairnAsPostgres([
                "--config", configPath, "restore", "--target-dir", dir + "/data", "--archive-mode", "off"
            ])
            #expect(r.status == 0, "\(r.stderr)")
            let restored = try ScratchCluster(restoredAt: dir + "/data", dir: dir, config: configPath)
            let start = Date()
            try restored.start()
            try restored.waitUntilPromoted(timeout: 900)
            let seconds = Date().timeIntervalSince(start)
            #expect(try restored.psql("SELECT count(*) FROM t") == expected)
            let fetched = restored.log.components(separatedBy: "restored log file").count - 1
            #expect(fetched >= segments)
            let line = String(
                format: "wal-fetch replay (%@, prefetch %d): %d segments in %.1f s = %.1f segments/s",
                repo.rawValue, prefetch, fetched, seconds, Double(fetched) / seconds)
            print(line)
            lines.append(line)
            // The prefetch spool is gone once recovery ended.
            #expect(!FileManager.default.fileExists(atPath: dir + "/data/pg_wal/cairn-prefetch"))
            restored.destroy()
        }
        Measurements.record(lines)
    }
}
