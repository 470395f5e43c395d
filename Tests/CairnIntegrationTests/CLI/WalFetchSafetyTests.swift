import CairnBase
import Foundation
import TestSupport
import Testing

/// `wal-fetch` answers "not in the archive" (exit 1, which ends recovery) only when it is true.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct WalFetchSafetyTests {
    @Test func aMissingRepositoryStopsRecoveryInsteadOfEndingIt() throws {
        let c = try ScratchCluster(name: "fetch-gone") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        c.stop()
        let segment = try #require(
            try FileManager.default.contentsOfDirectory(atPath: c.dir + "/repo/wal/00000001")
                .filter { $0.count == 28 && $0.hasSuffix(".zst") }.sorted().first
        ).prefix(24)
        func fetch(_ name: String) throws -> ProcessResult {
            try c.cairn(["wal-fetch", name, c.dir + "/fetched"])
        }

        // A present repository without the segment: the end of the archive.
        let absent = try fetch("000000010000000000000099")
        #expect(absent.status == 1, "\(absent.stderr)")
        // The repository moved away, an empty mount point left: an error that stops recovery.
        try Run.shell(
            "mv \(c.dir)/repo \(c.dir)/repo-away && mkdir \(c.dir)/repo && chown postgres:postgres \(c.dir)/repo")
        let gone = try fetch("000000010000000000000099")
        #expect(gone.status == ErrorCode.walFetchFatalExitCode, "\(gone.stderr)")
        #expect(gone.stderr.contains("cairn.json") && gone.stderr.contains("HINT:"), "\(gone.stderr)")
        #expect(try fetch(String(segment)).status == ErrorCode.walFetchFatalExitCode)
        try Run.shell("rmdir \(c.dir)/repo && mv \(c.dir)/repo-away \(c.dir)/repo")
        #expect(try fetch(String(segment)).status == 0)
        #expect(try fetch("000000010000000000000099").status == 1)
    }
}
