import Foundation
import Synchronization

/// Blocking work (curl transfers, zstd, file reads) runs on dedicated threads, never on Swift concurrency's
/// cooperative pool, which has only as many threads as cores.
public enum Blocking {
    /// Runs `body` on a new thread and returns its result to the awaiting task.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            let thread = Thread {
                do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
    }
}

extension Blocking {
    /// Runs best-effort work (cleanup) on a new thread and waits for it.
    public static func runIgnoringErrors(_ body: @escaping @Sendable () -> Void) async {
        _ = try? await run { body() }
    }
}

/// A fixed set of threads running submitted jobs, with a bound on queued jobs so producers block instead of
/// buffering without limit. The first error a job throws is kept and returned by `wait()`; after it, queued
/// jobs are skipped. Every pool must end with `wait()`, which also stops its threads.
public final class WorkerPool: @unchecked Sendable {
    private let lock = NSCondition()
    private var queue: [@Sendable () throws -> Void] = []
    private var running = 0
    private var closed = false
    private var firstError: (any Error)?
    private let maxQueued: Int
    private var workers: [Thread] = []

    /// - Parameters:
    ///   - threads: number of worker threads (at least 1).
    ///   - maxQueued: how many submitted jobs may wait before `submit` blocks; 0: none, `submit` blocks until a
    ///     thread is free to start the job.
    public init(threads count: Int, maxQueued: Int, name: String = "cairn-worker") {
        self.maxQueued = max(0, maxQueued)
        for i in 0..<max(1, count) {
            let t = Thread { self.loop() }
            t.name = "\(name)-\(i)"
            t.stackSize = 4 << 20
            workers.append(t)
        }
        for t in workers { t.start() }
    }

    /// True once a job has failed; producers should stop submitting.
    public var failed: Bool { lock.lock(); defer { lock.unlock() }; return firstError != nil }

    /// Queues a job, blocking while `maxQueued` jobs already wait. Returns false (and drops the job) when a
    /// previous job failed or the pool is closed.
    @discardableResult
    public func submit(_ job: @escaping @Sendable () throws -> Void) -> Bool {
        lock.lock(); defer { lock.unlock() }
        while (maxQueued == 0 ? queue.count + running >= workers.count : queue.count >= maxQueued)
            && firstError == nil && !closed
        {
            lock.wait()
        }
        guard firstError == nil, !closed else { return false }
        queue.append(job)
        lock.broadcast()
        return true
    }

    /// Drops queued jobs and refuses new ones; running jobs finish. Call `wait()` afterwards.
    public func cancel() {
        lock.lock()
        queue.removeAll()
        if firstError == nil { firstError = CancellationError() }
        lock.broadcast()
        lock.unlock()
    }

    /// Waits until every submitted job has finished, stops the threads, and throws the first job error.
    public func wait() throws {
        lock.lock()
        closed = true
        lock.broadcast()
        while running > 0 || !queue.isEmpty { lock.wait() }
        let e = firstError
        lock.unlock()
        if let e { throw e }
    }

    private func loop() {
        while true {
            lock.lock()
            while queue.isEmpty && !closed { lock.wait() }
            if queue.isEmpty && closed { lock.unlock(); return }
            let job = queue.removeFirst()
            let skip = firstError != nil
            running += 1
            lock.broadcast()
            lock.unlock()
            var err: (any Error)?
            if !skip { do { try job() } catch { err = error } }
            lock.lock()
            running -= 1
            if let err, firstError == nil { firstError = err }
            lock.broadcast()
            lock.unlock()
        }
    }
}
