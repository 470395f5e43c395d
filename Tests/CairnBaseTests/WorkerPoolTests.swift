import Foundation
import Synchronization
import Testing

@testable import CairnBase

@Suite struct WorkerPoolTests {
    @Test func runsEveryJobAndBoundsTheQueue() throws {
        let done = Mutex(0)
        let pool = WorkerPool(threads: 3, maxQueued: 2)
        for _ in 0..<50 {
            #expect(
                pool.submit {
                    usleep(1000); done.withLock { $0 += 1 }
                })
        }
        try pool.wait()
        #expect(done.withLock { $0 } == 50)
    }

    @Test func withoutAQueueSubmitWaitsForAFreeThread() throws {
        // Jobs submitted but not finished: never more than the threads once `submit` has returned.
        let outstanding = Mutex(0)
        var most = 0
        let pool = WorkerPool(threads: 2, maxQueued: 0)
        for _ in 0..<30 {
            outstanding.withLock { $0 += 1 }
            #expect(
                pool.submit {
                    usleep(2000); outstanding.withLock { $0 -= 1 }
                })
            most = max(most, outstanding.withLock { $0 })
        }
        try pool.wait()
        #expect(most <= 2)
        #expect(most == 2, "both threads were used")
        #expect(outstanding.withLock { $0 } == 0)
    }

    @Test func firstErrorStopsTheRestAndIsRethrown() {
        struct Boom: Error {}
        let pool = WorkerPool(threads: 2, maxQueued: 1)
        var refused = false
        for i in 0..<100 {
            if !pool.submit({
                if i == 3 { throw Boom() }; usleep(2000)
            }) {
                refused = true; break
            }
        }
        #expect(throws: Boom.self) { try pool.wait() }
        #expect(refused)
    }

    @Test func blockingRunReturnsToTheCaller() async throws {
        let v = try await Blocking.run { 6 * 7 }
        #expect(v == 42)
    }
}
