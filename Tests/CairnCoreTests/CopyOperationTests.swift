import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

/// `cairn copy` on in-memory repositories: what the target lacks is copied, a backup is committed last and only
/// when its objects match the source's manifest, an empty target adopts the source's identity.
@Suite struct CopyOperationTests {
    let clock = ManualClock(ExpireSimulationTests.day0)
    let source: MemoryRepository
    let info = RepositoryInfo(
        cluster: ClusterInfo(
            systemIdentifier: "42", versionNum: 150018, walSegmentSize: ExpireSimulationTests.seg, dataDirectory: nil),
        created: ExpireSimulationTests.day0, cairnVersion: "test")
    let id: String

    init() throws {
        source = MemoryRepository(clock: clock)
        try source.put(RepositoryInfo.key, try SealedDocument.seal(info))
        id = try ExpireSimulationTests.backup(0, repo: source, clock: clock)
    }

    func member(_ name: String, _ repo: any Repository) -> RepositorySet.Member { .init(name: name, repo: repo) }

    @Test func anEmptyRepositoryIsInitialisedAndFilled() throws {
        let target = MemoryRepository()
        let r = try CopyOperation.run(from: member("a", source), to: member("b", target), options: .init())
        #expect(r.initialized && r.backups == [id])
        #expect(try Catalog.load(from: target).backups.map(\.id) == [id])
        let again = try CopyOperation.run(from: member("a", source), to: member("b", target), options: .init())
        #expect(!again.initialized && again.backups.isEmpty && again.walFiles == 0)
    }

    @Test func anObjectThatDoesNotMatchItsManifestIsNotCommitted() throws {
        let key = Layout.bundleKey(id, archive: "base", index: 1)
        var bytes = try source.getBytes(key)
        bytes[bytes.count / 2] ^= 0xFF
        try source.put(key, bytes, options: .overwrite)
        let target = MemoryRepository()
        let e = #expect(throws: CairnError.self) {
            try CopyOperation.run(from: member("a", source), to: member("b", target), options: .init())
        }
        #expect(e?.code == .dataCorrupt)
        #expect(try target.head(Layout.manifestKey(id)) == nil)
    }

    @Test func aRepositoryOfAnotherClusterIsRefused() throws {
        let other = MemoryRepository()
        var foreign = info
        foreign.systemIdentifier = "43"
        try other.put(RepositoryInfo.key, try SealedDocument.seal(foreign))
        let e = #expect(throws: CairnError.self) {
            try CopyOperation.run(from: member("a", source), to: member("b", other), options: .init())
        }
        #expect(e?.code == .repoForeign)
    }
}
