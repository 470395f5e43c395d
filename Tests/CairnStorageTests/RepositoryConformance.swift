import CairnStorage
import Foundation
import TestSupport
import Testing

/// The repository contract (``Conformance``) on the drivers that need no service.
@Suite struct RepositoryConformanceTests {
    @Test func memory() throws {
        try Conformance.run(MemoryRepository(), largeObject: 3 << 20)
    }

    @Test func localFolder() throws {
        let dir = try TestEnvironment.tempDirectory("local-repo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let repo = LocalRepository(root: dir + "/repo")
        try Conformance.run(repo, largeObject: 3 << 20)
        // No temporary files are left behind.
        let leftovers =
            FileManager.default.enumerator(atPath: dir)?.allObjects.compactMap { $0 as? String }
            .filter { $0.contains(".cairn-tmp-") } ?? []
        #expect(leftovers.isEmpty)
    }
}
