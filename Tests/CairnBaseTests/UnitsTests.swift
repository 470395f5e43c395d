import Testing

@testable import CairnBase

@Suite struct UnitsTests {
    @Test(arguments: [
        ("16MiB", Int64(16 << 20)), ("8M", 8 << 20), ("512k", 512 << 10), ("1GiB", 1 << 30),
        ("100", 100), ("2 TB", 2 << 40), ("1b", 1)
    ])
    func sizes(text: String, bytes: Int64) {
        #expect(Units.parseSize(text) == bytes)
    }

    @Test(arguments: ["", "MiB", "12 parsecs", "-1M", "1.5G", "99999999999999T"])
    func badSizes(text: String) {
        #expect(Units.parseSize(text) == nil)
    }

    @Test func durations() {
        #expect(Units.parseDuration("30d") == Double(30 * 86400))
        #expect(Units.parseDuration("1h30m") == 5400)
        #expect(Units.parseDuration("500ms") == 0.5)
        #expect(Units.parseDuration("2w") == Double(14 * 86400))
        #expect(Units.parseDuration("90") == nil)
        #expect(Units.parseDuration("5 years") == nil)
        #expect(Units.parseDuration("") == nil)
    }

    @Test func formatting() {
        #expect(Units.formatBytes(12) == "12 B")
        #expect(Units.formatBytes(1536) == "1.5 KiB")
        #expect(Units.formatBytes(200 << 20) == "200.0 MiB")
        #expect(Units.formatDuration(0.18) == "180ms")
        #expect(Units.formatDuration(4.24) == "4.2s")
        #expect(Units.formatDuration(192) == "3m12s")
        #expect(Units.formatDuration(7500) == "2h05m")
    }

    @Test func hex() {
        #expect(Hex.encode([0, 1, 0xab, 0xff]) == "0001abff")
        #expect(Hex.decode("0001ABff") == [0, 1, 0xab, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}
