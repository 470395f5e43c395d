import Testing

@testable import CairnCLI

/// The progress line's figures: bytes, share of the total, rate and ETA.
@Suite struct ProgressTests {
    @Test func describesBytesShareRateAndETA() {
        let gib: Int64 = 1 << 30
        let s = ProgressLine.describe(label: "backup", bytes: gib, total: 4 * gib, elapsed: 10)
        #expect(s.hasPrefix("backup: 1"))
        #expect(s.contains("(25%)"), "\(s)")
        #expect(s.contains("/s"))
        #expect(s.hasSuffix("ETA 30.0s"), "\(s)")
        // Unknown total: no share, no ETA. An exceeded estimate: no negative ETA.
        #expect(!ProgressLine.describe(label: "restore", bytes: gib, total: nil, elapsed: 2).contains("ETA"))
        #expect(
            ProgressLine.describe(label: "backup", bytes: 5 * gib, total: 4 * gib, elapsed: 2).hasSuffix(
                "(100%) at 2.5 GiB/s, finishing"))
    }
}
