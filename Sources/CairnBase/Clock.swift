import Foundation
import Synchronization

/// The source of wall-clock time. Policies and retries take a clock so tests can control time.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Date
    /// Blocks the calling thread for `seconds` (a test clock advances instead of sleeping).
    func sleep(seconds: Double)
}

/// The real clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        usleep(useconds_t(min(seconds, 3600) * 1_000_000))
    }
}

/// A clock for tests: time moves only when told to, and `sleep` advances it instantly.
public final class ManualClock: WallClock {
    private let current: Mutex<Date>
    public init(_ start: Date) { current = Mutex(start) }
    public func now() -> Date { current.withLock { $0 } }
    public func sleep(seconds: Double) { advance(seconds) }
    /// Moves the clock forward.
    public func advance(_ seconds: Double) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    /// Sets the clock.
    public func set(_ date: Date) { current.withLock { $0 = date } }
}
