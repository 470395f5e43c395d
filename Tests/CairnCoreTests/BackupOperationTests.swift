import CairnBase
import CairnPostgres
import CairnStorage
import Foundation
import Testing

@testable import CairnCore

/// ``BackupOperation/awaitWAL(repo:from:through:clock:timeout:archived:)``: the wait for the WAL a backup needs,
/// with an injected clock and an in-memory repository.
@Suite struct AwaitWALTests {
    let start = Date(timeIntervalSince1970: 1_790_000_000)
    let first = WALSegment(timeline: 1, number: 5, segmentSize: 16 << 20)

    func store(_ segment: WALSegment, in repo: MemoryRepository) {
        _ = try? repo.put(Layout.walKey(.segment(segment.name)), [1], options: .overwrite)
    }

    /// The repository is asked at growing intervals (0.05, 0.125, 0.24, 0.41 s …); the archiver reporting the
    /// segment at 0.3 s ends the wait within one 20 ms look, not at the next ask.
    @Test func theArchiversReportEndsTheWaitAtOnce() throws {
        let repo = MemoryRepository()
        let clock = ManualClock(start)
        store(first, in: repo)
        let last = first.next
        try BackupOperation.awaitWAL(
            repo: repo, from: first, through: last, clock: clock, timeout: 60,
            archived: {
                guard clock.now().timeIntervalSince(start) >= 0.3 else { return first.name }
                store(last, in: repo)
                return last.name
            })
        let waited = clock.now().timeIntervalSince(start)
        #expect(waited >= 0.3 && waited < 0.33, "\(waited)")

        // Without the archiver's report the same arrival is seen at the next ask.
        let slow = MemoryRepository()
        let later = ManualClock(start)
        store(first, in: slow)
        final class Arrival: @unchecked Sendable { var stored = false }
        let arrival = Arrival()
        try BackupOperation.awaitWAL(
            repo: slow, from: first, through: last, clock: later, timeout: 60,
            archived: {
                if !arrival.stored && later.now().timeIntervalSince(start) >= 0.3 {
                    store(last, in: slow)
                    arrival.stored = true
                }
                return nil
            })
        #expect(later.now().timeIntervalSince(start) > 0.4)
    }

    @Test func aSegmentThatNeverArrivesFailsAtTheTimeout() {
        let clock = ManualClock(start)
        let e = #expect(throws: CairnError.self) {
            try BackupOperation.awaitWAL(
                repo: MemoryRepository(), from: first, through: first, clock: clock, timeout: 30,
                archived: { "000000010000000000000004" })
        }
        #expect(e?.code == .walMissing)
        #expect(e?.message.contains(first.name) == true)
        let waited = clock.now().timeIntervalSince(start)
        #expect(waited >= 30 && waited < 33, "\(waited)")
    }
}
