import CairnBase
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

/// What the commands over every repository decide: how they fail once when some repositories failed, what a
/// repository lacks of the primary's, and how `doctor` reviews several repositories.
@Suite struct SeveralRepositoriesTests {
    typealias Model = ExpirePlannerTests.Model

    @Test func oneFailureKeepsItsCodeAndHintAndNamesTheRepository() throws {
        let e = try #require(
            RepositoryFailures.summary(
                [.init(name: "s3-2", error: CairnError(.repoBucketMissing, "no bucket x", hint: "create it"))],
                total: 2))
        #expect(e.code == .repoBucketMissing)
        #expect(e.message == "repository s3-2: no bucket x")
        #expect(e.hint == "create it")
        #expect(RepositoryFailures.summary([], total: 2) == nil)
    }

    @Test func severalFailuresAreNamedAndDamagedDataIsTheWorst() throws {
        let failures: [RepositoryFailures.Failure] = [
            .init(name: "local-1", error: CairnError(.repoUnreachable, "down")),
            .init(name: "s3-2", error: CairnError(.dataCorrupt, "damaged")),
            .init(name: "s3-3", error: CairnError(.walMissing, "gap"))
        ]
        let e = try #require(RepositoryFailures.summary(failures, total: 3))
        #expect(e.code == .dataCorrupt, "damage outranks an unreachable primary")
        #expect(
            e.message
                == "3 of 3 repositories failed: local-1 [repo.unreachable], s3-2 [data.corrupt], s3-3 [wal.missing]")
        #expect(e.hint != nil)
        // Without damaged or missing data, the first in the repositories' order (the primary first).
        let plain: [RepositoryFailures.Failure] = [
            .init(name: "local-1", error: CairnError(.repoTimeout, "slow")),
            .init(name: "s3-2", error: CairnError(.repoAuth, "denied"))
        ]
        #expect(RepositoryFailures.worst(plain)?.name == "local-1")
    }

    static func primaryAndCopy() -> (primary: Catalog, copy: Catalog) {
        var p = Model()
        for n: UInt64 in 1...6 { p.archive(n) }
        p.backup("A", segment: 2)
        p.backup("B", segment: 5)
        var c = Model()
        for n: UInt64 in 1...3 { c.archive(n) }
        c.backup("A", segment: 2)
        return (p.catalog, c.catalog)
    }

    @Test func aRepositoryLacksTheBackupsAndWalFilesThePrimaryHas() {
        let (primary, copy) = Self.primaryAndCopy()
        let lag = RepositoryLag.of(copy, behind: primary)
        #expect(lag.isBehind)
        #expect(lag.missingBackups == ["B"])
        #expect(lag.missingWAL == ["000000010000000000000004", "000000010000000000000005", "000000010000000000000006"])
        #expect(
            lag.summary
                == "1 committed backup(s) (B) and 3 WAL file(s) (000000010000000000000004…000000010000000000000006)")
        #expect(!RepositoryLag.of(primary, behind: primary).isBehind)
        // What only the copy has is no lag.
        #expect(!RepositoryLag.of(primary, behind: copy).isBehind)
    }

    @Test func doctorWarnsAboutALaggingRepositoryWithTheCopyCommand() throws {
        var f = DoctorTests.healthy()
        let (primary, copy) = Self.primaryAndCopy()
        f.lag = .init(name: "s3-2", primary: "local-1", lag: RepositoryLag.of(copy, behind: primary))
        let findings = Doctor.evaluate(f, now: DoctorTests.now, parts: [.repository])
        let lag = try #require(DoctorTests.finding(findings, "repository_lag"))
        #expect(lag.severity == .warning)
        #expect(lag.explanation.contains("repository s3-2 lacks 1 committed backup(s)"))
        #expect(lag.fix == "run `cairn copy --to s3-2`")
        #expect(DoctorTests.finding(findings, "archive_mode") == nil, "the cluster is reviewed once, apart")

        f.lag = .init(name: "s3-2", primary: "local-1", lag: RepositoryLag())
        let caughtUp = Doctor.evaluate(f, now: DoctorTests.now, parts: [.repository])
        #expect(DoctorTests.finding(caughtUp, "repository_lag")?.severity == .ok)
        let cluster = Doctor.evaluate(f, now: DoctorTests.now, parts: [.cluster])
        #expect(DoctorTests.finding(cluster, "archive_mode") != nil)
        #expect(DoctorTests.finding(cluster, "repository") == nil)
    }

    @Test func aPassingDrillInAnyRepositoryCountsForAll() {
        var drilled = DoctorTests.healthy()
        var copy = DoctorTests.healthy()
        copy.catalog?.lastDrill = nil
        copy.catalog?.lastPassingDrill = nil
        drilled.catalog?.lastPassingDrill = DoctorTests.now.addingTimeInterval(-3600)
        let shared = DoctorFacts.sharingDrills([drilled, copy])
        #expect(shared[1].catalog?.lastPassingDrill == DoctorTests.now.addingTimeInterval(-3600))
        let findings = Doctor.evaluate(shared[1], now: DoctorTests.now, parts: [.repository])
        #expect(DoctorTests.finding(findings, "drill")?.severity == .ok)
    }
}
