import CairnBase
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

/// Push-ahead records acknowledge a file only for the store they were written for.
@Suite struct WalPushAheadRecordTests {
    @Test func aRecordForOneStoreIsNotAcceptedForAnother() throws {
        let dir = try TestEnvironment.tempDirectory("pushahead-record")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let name = "000000010000000000000007"
        let path = dir + "/pg_wal/" + name
        try FileManager.default.createDirectory(atPath: dir + "/pg_wal", withIntermediateDirectories: true)
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: path))
        let spool = WalPushAhead.spool(walDirectory: dir + "/pg_wal")
        let identity = try #require(WalPushAhead.Identity.of(path))
        // The same bucket and prefix behind two endpoints: the same location, two stores.
        func s3(_ endpoint: String) -> S3Repository {
            S3Repository(
                settings: S3Settings(
                    endpoint: URL(string: endpoint)!, bucket: "bucket", prefix: "prefix",
                    credentials: AWSCredentials(accessKeyId: "a", secretAccessKey: "s")))
        }
        let (first, second) = (s3("http://127.0.0.1:9000"), s3("https://127.0.0.1:9443"))
        #expect(first.location == second.location)
        let (a, b) = (first.identity, second.identity)
        func record() throws {
            try WalPushAhead.write(
                .init(store: a, key: "wal/00000001/\(name).zst", size: 4096, storedSize: 100, identity: identity),
                file: name, spool: spool)
        }
        try record()
        #expect(WalPushAhead.acknowledge(path: path, store: b) == nil)
        #expect(
            !FileManager.default.fileExists(atPath: spool + "/" + name + ".ok"),
            "the record of another store is removed")
        try record()
        let r = try #require(WalPushAhead.acknowledge(path: path, store: a))
        #expect(r.outcome == .pushedAhead && r.size == 4096)
    }
}
