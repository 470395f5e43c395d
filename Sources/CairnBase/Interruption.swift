import Foundation
import Synchronization

/// SIGINT/SIGTERM, the one interrupt mechanism.
///
/// Set once a signal asked the process to stop: long operations check it (``check()``) before anything that
/// would commit or create state (a manifest, a drill record, a scratch folder), so an interrupted run never commits
/// after its clean-up began. A job registers its clean-ups (``onInterrupt(_:_:)``); the first signal runs them,
/// newest first (stop a drill's scratch cluster, record the interrupted job, release the repository lock), then
/// hands what they did to the program's ``setExitHandler(_:)`` (the CLI prints the error and exits 130).
/// Whatever the operation had stored is not committed (manifests are written last) and is removed as garbage by
/// `cairn expire`.
public enum Interruption {
    private static let flag = Atomic<Bool>(false)
    private struct State {
        var sources: [any DispatchSourceSignal] = []
        var actions: [(id: Int, what: String, run: @Sendable () -> Void)] = []
        var next = 0
        var exit: (@Sendable ([String]) -> Void)?
    }
    private static let state = Mutex(State())
    /// Held by the signal handler from before it sets the interrupt flag until the exit handler ends the process.
    private static let handling = NSLock()

    /// Marks the process as interrupted.
    public static func request() { flag.store(true, ordering: .sequentiallyConsistent) }

    /// Whether an interrupt arrived.
    public static var requested: Bool { flag.load(ordering: .sequentiallyConsistent) }

    /// Throws `interrupted` once an interrupt arrived.
    public static func check() throws {
        if requested { throw CairnError(.interrupted, "the operation was interrupted by a signal") }
    }

    /// What the program does after the clean-ups ran, given their descriptions (non-empty ones, in the order they
    /// were registered): the CLI reports the interrupt and ends the process. Set it before the first ``onInterrupt(_:_:)``.
    public static func setExitHandler(_ handler: @escaping @Sendable ([String]) -> Void) {
        state.withLock { $0.exit = handler }
    }

    /// Registers `action` (described by `what`, e.g. "the scratch cluster was removed"; empty to say nothing)
    /// until ``remove(_:)``. The first registration installs the signal handlers.
    public static func onInterrupt(_ what: String, _ action: @escaping @Sendable () -> Void) -> Int {
        state.withLock { s in
            if s.sources.isEmpty { s.sources = [SIGINT, SIGTERM].map(install) }
            s.next += 1
            s.actions.append((s.next, what, action))
            return s.next
        }
    }

    /// Unregisters a clean-up.
    public static func remove(_ id: Int) { state.withLock { $0.actions.removeAll { $0.id == id } } }

    /// When an interrupt is being handled, lets the handler finish its clean-up and end the process (never
    /// returns then): the operation's own error path must not end the process half-way through it.
    public static func waitIfInterrupted() {
        guard requested else { return }
        handling.lock()
    }

    private static func install(_ sig: Int32) -> any DispatchSourceSignal {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            handling.lock()
            request()
            let (actions, exit) = state.withLock { s in
                defer { s.actions = [] }; return (s.actions, s.exit)
            }
            for a in actions.reversed() { a.run() }
            exit?(actions.map(\.what).filter { !$0.isEmpty })
        }
        source.resume()
        return source
    }
}
