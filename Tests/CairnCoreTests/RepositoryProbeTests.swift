import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

/// `RepositoryProbe.proveCreateOnly` on stores that honour create-only writes and on two that do not (a store
/// that ignores `If-None-Match: *` and replaces, and one that reports success without writing).
@Suite struct RepositoryProbeTests {
    /// How a broken store treats a create-only write over an existing object.
    enum Broken { case replaces, acknowledgesWithoutWriting }

    /// A repository that passes everything to `base` except create-only writes of existing keys.
    final class IgnoresCreateOnly: Repository, @unchecked Sendable {
        let base = MemoryRepository()
        let broken: Broken
        init(_ broken: Broken) { self.broken = broken }
        var location: String { "memory://broken" }
        var capabilities: RepositoryCapabilities { base.capabilities }
        func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
            if options.createOnly, broken == .acknowledgesWithoutWriting, try base.head(key) != nil {
                return ObjectInfo(key: key, size: Int64(bytes.count))
            }
            return try base.put(key, bytes, options: .overwrite)
        }
        func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter {
            try base.makeWriter(key, options: .overwrite)
        }
        func get(
            _ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void
        ) throws -> ObjectInfo {
            try base.get(key, range: range, into: sink)
        }
        func head(_ key: String) throws -> ObjectInfo? { try base.head(key) }
        func list(prefix: String) throws -> [ObjectInfo] { try base.list(prefix: prefix) }
        func delete(_ keys: [String]) throws { try base.delete(keys) }
    }

    @Test func aStoreThatRefusesTheSecondWritePasses() throws {
        let repo = MemoryRepository()
        try RepositoryProbe.proveCreateOnly(repo: repo)
        #expect(try repo.list(prefix: "").isEmpty, "the probe object is removed")
    }

    @Test(arguments: [Broken.replaces, .acknowledgesWithoutWriting])
    func aStoreThatIgnoresCreateOnlyIsRefused(broken: Broken) throws {
        let repo = IgnoresCreateOnly(broken)
        do {
            try RepositoryProbe.proveCreateOnly(repo: repo)
            Issue.record("a store that ignores create-only writes passed the probe")
        } catch let e as CairnError {
            #expect(e.code == .repoCreateOnlyUnsupported)
            #expect(
                e.message.contains(
                    broken == .replaces ? "replaced an existing object" : "accepted a create-only write"),
                "\(e.message)")
            #expect(e.hint?.contains("If-None-Match") == true)
        }
        #expect(try repo.list(prefix: "").isEmpty, "the probe object is removed")
    }

    @Test func initRefusesAStoreThatIgnoresCreateOnly() throws {
        let repo = IgnoresCreateOnly(.replaces)
        let cluster = ClusterInfo(
            systemIdentifier: "7300000000000000999", versionNum: 150018, walSegmentSize: 16 << 20, dataDirectory: nil)
        #expect(throws: CairnError.self) { try InitOperation.run(repo: repo, cluster: cluster, clock: SystemClock()) }
        #expect(try repo.head(RepositoryInfo.key) == nil, "no cairn.json on a store that cannot keep WAL safe")
    }
}
