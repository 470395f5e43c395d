import CairnPostgres
import Foundation
import Testing

@testable import CairnCore

/// The repository layout is spelled in one place (``Layout``), and what verify accepts follows it.
@Suite struct LayoutTests {
    static let id = "20261125T153012F"
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    /// A key of every kind cairn writes, each made by the type that writes it.
    static var keysCairnWrites: [String] {
        [
            Layout.manifestKey(id), Pin.key(id),
            Layout.bundleKey(id, archive: Layout.archiveName(tablespace: nil), index: 1),
            Layout.bundleKey(id, archive: Layout.archiveName(tablespace: 16385), index: 2),
            Layout.dumpKey(id, database: "app"),
            Layout.globalsKey(id), Layout.pgManifestKey(id),
            Layout.walKey(.segment("000000010000000000000003")), Layout.walKey(.history(timeline: 2)),
            Layout.timelineKey(2),
            Layout.leaseKey("l1"), DrillRecord.key("d1"), Layout.reportKey(month: "2026-11", file: "report.md"),
            Layout.jobRecordsPrefix(month: "2026-11") + "x.json", Layout.verifyStateKey,
            Layout.verifyRunKey(started: t0),
            RepositoryLock.key("backup"), Layout.probeKey("create-only-1")
        ]
    }

    @Test func everyKeyIsUnderAKnownPrefixAndIdentityKeysAreTheTopLevelOnes() {
        for key in Self.keysCairnWrites {
            #expect(
                Layout.knownPrefixes.filter { key.hasPrefix($0) }.count == 1, "\(key) is under exactly one known prefix"
            )
        }
        #expect(Layout.identityKeys == [RepositoryInfo.key, RepositoryInfo.copyKey, Keyring.key, Keyring.copyKey])
        #expect(Layout.knownPrefixes == Layout.indexedPrefixes + Layout.recordPrefixes)
        #expect(Set(Layout.knownPrefixes).count == Layout.knownPrefixes.count)
        #expect(
            Layout.knownPrefixes.allSatisfy { $0.hasSuffix("/") && !$0.dropLast().contains("/") }, "top-level folders")
        #expect(Layout.agedRecordPrefixes.allSatisfy { p in Layout.recordPrefixes.contains { p.hasPrefix($0) } })
    }

    /// What verify treats as known is the layout's list: cairn's identity and records pass without a manifest,
    /// an unreferenced object under `backups/` is an interrupted backup, and anything else is a stranger.
    @Test func verifyTreatsTheLayoutsKnownPrefixesAsKnown() {
        for prefix in Layout.recordPrefixes {
            #expect(VerifyOperation.unreferencedProblem(prefix + "something.json") == nil, "\(prefix) is cairn's")
        }
        for key in Layout.identityKeys { #expect(VerifyOperation.unreferencedProblem(key) == nil, "\(key) is cairn's") }
        let interrupted = VerifyOperation.unreferencedProblem(Layout.bundleKey(Self.id, archive: "base", index: 1))
        #expect(interrupted?.detail.contains("an interrupted backup") == true)
        for stranger in ["stray/object", "cairn.json.bak", "notes.txt"] {
            #expect(
                VerifyOperation.unreferencedProblem(stranger)?.detail == "not an object cairn writes", "\(stranger)")
        }
        for key in Self.keysCairnWrites where !Layout.indexedPrefixes.contains(where: { key.hasPrefix($0) }) {
            #expect(VerifyOperation.unreferencedProblem(key) == nil, "\(key) needs no manifest")
        }
    }
}
