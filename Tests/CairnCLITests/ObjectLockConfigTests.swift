import CairnBase
import CairnCore
import CairnStorage
import Foundation
import Testing

@testable import CairnCLI

/// `repository.object_lock` in cairn.yaml: what is accepted, and each mistake with its line and reason.
@Suite struct ObjectLockConfigTests {
    let loader = ConfigLoader(environment: [:])

    func load(_ lock: String, type: String = "s3") throws -> Configuration {
        let repo =
            type == "s3"
            ? "  type: s3\n  bucket: backups\n  endpoint: https://s3.example.com" : "  type: local\n  path: /srv/repo"
        return try loader.load(
            text: "repository:\n\(repo)\n  object_lock:\n\(lock)\nretention:\n  recovery_window: 14d\n",
            file: "c.yaml")
    }

    func problems(_ lock: String, type: String = "s3") -> String {
        do {
            _ = try load(lock, type: type)
            return ""
        } catch let e as ConfigError { return e.message } catch { return "\(error)" }
    }

    @Test func modeAndMarginWithTheirDefaults() throws {
        let c = try load("    mode: compliance")
        guard case .s3(let s3) = c.repository else { Issue.record("not s3"); return }
        #expect(s3.objectLock == .init(mode: .compliance, margin: 7 * 86400, testShortPeriods: false))
        let g = try load("    mode: governance\n    margin: 2d")
        guard case .s3(let s3g) = g.repository else { Issue.record("not s3"); return }
        #expect(s3g.objectLock?.mode == .governance && s3g.objectLock?.margin == 2 * 86400)
        #expect(ObjectLockPolicy.period(retention: g.retention, margin: 2 * 86400) == 16 * 86400)
    }

    @Test func mistakesAreReportedWithTheirReason() {
        #expect(problems("    margin: 2d").contains("repository.object_lock.mode is required"))
        #expect(problems("    mode: strict").contains("must be one of \"governance\", \"compliance\""))
        #expect(problems("    mode: governance\n    margin: 5s").contains("margin must be at least 1d, not 5.0s"))
        #expect(problems("    mode: governance\n    retain: 30d").contains("retain"))
        #expect(
            problems("    mode: governance", type: "local").contains("repository.object_lock applies to type: s3 only"))
    }

    @Test func shortMarginsOnlyWithTestShortPeriods() throws {
        let c = try load("    mode: governance\n    margin: 5s\n    test_short_periods: true")
        guard case .s3(let s3) = c.repository else { Issue.record("not s3"); return }
        #expect(s3.objectLock == .init(mode: .governance, margin: 5, testShortPeriods: true))
    }

    /// Objects Cairn deletes in its normal course are written without a lock; everything it keeps is locked.
    @Test func transientObjectsAreNotLocked() {
        for key in [
            "locks/backup.json", "leases/x.json", "probe/create-only-1", "backups/20261203T091209F/pin.json",
            Layout.verifyStateKey
        ] {
            #expect(ObjectLockPolicy.isExempt(key), "\(key)")
        }
        for key in [
            "cairn.json", "keyring.json", "backups/20261203T091209F/manifest.json",
            "backups/20261203T091209F/base-1.tar.zst", "wal/00000001/000000010000000000000003.zst",
            "timelines/00000002.json", "drills/x.json", "reports/2026-12/report.html", "history/2026-12/x.json"
        ] {
            #expect(!ObjectLockPolicy.isExempt(key), "\(key)")
        }
    }
}
