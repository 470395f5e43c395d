import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

@Suite struct SealedDocumentTests {
    struct Doc: Codable, Equatable { var name: String; var when: Date; var n: Double }

    @Test func sealAndOpen() throws {
        let d = Doc(name: "x/y", when: Date(timeIntervalSince1970: 1_790_000_000.25), n: 0.1)
        let bytes = try SealedDocument.seal(d)
        #expect(try SealedDocument.open(Doc.self, from: bytes, what: "doc") == d)
        // It stays plain JSON.
        #expect(try JSONSerialization.jsonObject(with: Data(bytes)) is [String: Any])
    }

    @Test func anyChangeIsDetected() throws {
        let bytes = try SealedDocument.seal(Doc(name: "abc", when: Date(), n: 1))
        for i in 0..<bytes.count {
            for bit in [0, 5] {
                var b = bytes
                b[i] ^= UInt8(1 << bit)
                #expect(throws: CairnError.self, "byte \(i) bit \(bit)") {
                    try SealedDocument.open(Doc.self, from: b, what: "doc")
                }
            }
        }
        // Every truncation, down to the final newline.
        for n in 0..<bytes.count {
            #expect(throws: CairnError.self, "cut to \(n)") {
                try SealedDocument.open(Doc.self, from: Array(bytes.prefix(n)), what: "doc")
            }
        }
        #expect(throws: CairnError.self) { try SealedDocument.open(Doc.self, from: [], what: "doc") }
    }
}

@Suite struct InitOperationTests {
    let cluster = ClusterInfo(
        systemIdentifier: "7300000000000000001", versionNum: 150018, walSegmentSize: 16 << 20, dataDirectory: "/d")
    let clock = ManualClock(Date(timeIntervalSince1970: 1_790_000_000))

    @Test func createsThenConfirms() throws {
        let repo = MemoryRepository()
        let first = try InitOperation.run(repo: repo, cluster: cluster, clock: clock)
        #expect(first.outcome == .created)
        #expect(try repo.head("cairn.json") != nil && repo.head("cairn.json.copy") != nil)
        #expect(try InitOperation.run(repo: repo, cluster: cluster, clock: clock).outcome == .existing)
    }

    @Test func refusesAnotherClustersRepository() throws {
        let repo = MemoryRepository()
        _ = try InitOperation.run(repo: repo, cluster: cluster, clock: clock)
        var other = cluster
        other.systemIdentifier = "7399999999999999999"
        let e = #expect(throws: CairnError.self) { try InitOperation.run(repo: repo, cluster: other, clock: clock) }
        #expect(e?.code == .repoForeign)
        #expect(e?.hint != nil)
    }

    @Test func refusesAnotherMajorVersion() throws {
        let repo = MemoryRepository()
        _ = try InitOperation.run(repo: repo, cluster: cluster, clock: clock)
        var other = cluster
        other.versionNum = 160004
        #expect(throws: CairnError.self) { try InitOperation.run(repo: repo, cluster: other, clock: clock) }
    }

    @Test func repairsADamagedTwinFromTheOther() throws {
        let repo = MemoryRepository()
        _ = try InitOperation.run(repo: repo, cluster: cluster, clock: clock)
        repo.tamper("cairn.json") { $0[20] ^= 0xff }
        // The copy still identifies the repository.
        #expect(try RepositoryInfo.require(from: repo).systemIdentifier == cluster.systemIdentifier)
        #expect(try InitOperation.run(repo: repo, cluster: cluster, clock: clock).outcome == .repaired)
        #expect(
            try SealedDocument.open(RepositoryInfo.self, from: repo.getBytes("cairn.json"), what: "x").systemIdentifier
                == cluster.systemIdentifier)
    }

    @Test func refusesANonEmptyLocationWithoutCairnJSON() throws {
        let repo = MemoryRepository()
        try repo.put("somebody/else", [1])
        let e = #expect(throws: CairnError.self) { try InitOperation.run(repo: repo, cluster: cluster, clock: clock) }
        #expect(e?.code == .repoObjectExists)
    }

    @Test func bothCopiesDamagedIsReported() throws {
        let repo = MemoryRepository()
        _ = try InitOperation.run(repo: repo, cluster: cluster, clock: clock)
        repo.tamper("cairn.json") { $0.removeLast(5) }
        repo.tamper("cairn.json.copy") { $0.removeLast(5) }
        let e = #expect(throws: CairnError.self) { try RepositoryInfo.load(from: repo) }
        #expect(e?.code == .repoCorrupt)
    }
}
