import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

@testable import CairnCore

/// A repository that is down: every call fails as an unreachable endpoint does.
struct DownRepository: Repository {
    var location = "s3://down/prefix"
    var capabilities: RepositoryCapabilities { [.persistent] }
    func fail() -> CairnError { CairnError(.repoUnreachable, "cannot connect to \(location)") }
    func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo { throw fail() }
    func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter { throw fail() }
    func get(_ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> ObjectInfo
    { throw fail() }
    func head(_ key: String) throws -> ObjectInfo? { throw fail() }
    func list(prefix: String) throws -> [ObjectInfo] { throw fail() }
    func delete(_ keys: [String]) throws { throw fail() }
}

/// wal-push to several repositories and wal-fetch's fallback, on in-memory repositories.
@Suite struct WalPushToAllTests {
    let base = try! WalPushTests()
    let second = MemoryRepository()

    init() throws { try second.put(RepositoryInfo.key, try SealedDocument.seal(base.info)) }

    func set(_ repos: [any Repository]) -> RepositorySet {
        let ms = repos.enumerated().map { RepositorySet.Member(name: "r\($0.offset + 1)", repo: $0.element) }
        return RepositorySet(ms[0], others: Array(ms.dropFirst()))
    }

    /// Marks `count` files ready in the WAL directory of `dir` (what PostgreSQL does before archiving them).
    func ready(_ count: Int) throws {
        try FileManager.default.createDirectory(atPath: base.dir + "/archive_status", withIntermediateDirectories: true)
        for i in 0..<count {
            FileManager.default.createFile(
                atPath: base.dir + "/archive_status/00000001000000000000001\(i).ready", contents: nil)
        }
    }

    @Test func aFileIsStoredInEveryRepositoryBeforeItIsAcknowledged() throws {
        let path = try base.file("000000010000000000000003", WalPushTests.segment())
        let r = try WalPush.run(repos: set([base.repo, second]), pipeline: Pipeline(), path: path)
        #expect(r.outcome == .stored && r.behind == nil)
        for repo in [base.repo, second] {
            #expect(try repo.head("wal/00000001/000000010000000000000003.zst") != nil)
        }
        // A repeated push is acknowledged by both (same content).
        #expect(
            try WalPush.run(repos: set([base.repo, second]), pipeline: Pipeline(), path: path).outcome == .alreadyStored
        )
    }

    @Test func aFailedRepositoryHoldsTheFileBackUntilTheBacklogExceedsTheLimit() throws {
        let path = try base.file("000000010000000000000004", WalPushTests.segment(number: 4))
        let repos = set([base.repo, DownRepository()])
        try ready(2)  // 2 MiB waiting, limit 2 MiB: not more than allowed
        let e = #expect(throws: CairnError.self) {
            try WalPush.run(repos: repos, pipeline: Pipeline(), path: path, maxBacklog: 2 << 20)
        }
        #expect(e?.code == .repoBehind)
        #expect(e?.message.contains("not yet in r2") == true)
        #expect(try base.repo.head("wal/00000001/000000010000000000000004.zst") != nil, "stored where it could be")
        try ready(3)  // 3 MiB waiting: past the backlog, acknowledged without r2
        let r = try WalPush.run(repos: repos, pipeline: Pipeline(), path: path, maxBacklog: 2 << 20)
        #expect(r.behind == ["r2"])
    }

    @Test func aConflictFailsAtOnceWhateverTheOtherRepositorySays() throws {
        let path = try base.file("000000010000000000000005", WalPushTests.segment(number: 5))
        _ = try WalPush.run(repo: second, pipeline: Pipeline(), path: path)
        let other = try base.file("000000010000000000000005", WalPushTests.segment(fill: 1, number: 5))
        let e = #expect(throws: CairnError.self) {
            try WalPush.run(repos: set([base.repo, second]), pipeline: Pipeline(), path: other, maxBacklog: 0)
        }
        #expect(e?.code == .walConflict)
    }

    @Test func walFetchTakesTheFileFromTheNextRepositoryWhenOneIsDownOrLacksIt() throws {
        let bytes = WalPushTests.segment(number: 6)
        _ = try WalPush.run(repo: second, pipeline: Pipeline(), path: try base.file("000000010000000000000006", bytes))
        let out = base.dir + "/fetched"
        for first in [DownRepository() as any Repository, base.repo] {
            let r = try WalFetch.run(
                repos: set([first, second]), pipeline: Pipeline(), name: "000000010000000000000006", dest: out)
            #expect(r.outcome == .fetched)
            #expect(FileManager.default.contents(atPath: out) == Data(bytes))
        }
        // The end of the archive needs an answer: one repository that says "not here" is enough, none is not.
        let end = #expect(throws: CairnError.self) {
            try WalFetch.run(
                repos: set([DownRepository(), second]), pipeline: Pipeline(), name: "000000010000000000000007",
                dest: out)
        }
        #expect(end?.code == .walNotFound)
        let none = #expect(throws: CairnError.self) {
            try WalFetch.run(
                repos: set([DownRepository(), DownRepository()]), pipeline: Pipeline(),
                name: "000000010000000000000007", dest: out)
        }
        #expect(none?.code == .repoUnreachable)
    }
}
