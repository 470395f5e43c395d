import CairnBase
import CairnCore
import Foundation
import Synchronization

/// SIGINT/SIGTERM in a job command: run the registered clean-ups (newest first: stop a drill's scratch cluster,
/// record the interrupted job, release the repository lock), then exit 130. Whatever the operation had stored is
/// not committed (manifests are written last) and is removed as garbage by `cairn expire`.
enum Interrupts {
    private struct State {
        var sources: [any DispatchSourceSignal] = []
        var actions: [(id: Int, what: String, run: @Sendable () -> Void)] = []
        var next = 0
    }
    private static let state = Mutex(State())
    /// Held by the signal handler from before it sets the interrupt flag until it exits the process.
    private static let handling = NSLock()

    /// When an interrupt is being handled, lets the handler finish its clean-up and exit (never returns then):
    /// the operation's own error path must not end the process half-way through it.
    static func waitIfInterrupted() {
        guard Interruption.requested else { return }
        handling.lock()
    }

    /// Registers `action` (described by `what`, e.g. "the scratch cluster was removed") until `remove(_:)`.
    static func add(_ what: String, _ action: @escaping @Sendable () -> Void) -> Int {
        state.withLock { s in
            if s.sources.isEmpty { s.sources = [SIGINT, SIGTERM].map(install) }
            s.next += 1
            s.actions.append((s.next, what, action))
            return s.next
        }
    }

    static func remove(_ id: Int) { state.withLock { $0.actions.removeAll { $0.id == id } } }

    private static func install(_ sig: Int32) -> any DispatchSourceSignal {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            handling.lock()
            Interruption.request()
            let actions = state.withLock { s in defer { s.actions = [] }; return s.actions }
            for a in actions.reversed() { a.run() }
            let done = actions.map(\.what).filter { !$0.isEmpty }
            Output.stderr("cairn: error: interrupted\(done.isEmpty ? "" : "; " + done.joined(separator: "; ")) [interrupted]")
            CairnMain.terminate(ErrorCode.interrupted.exitCode)
        }
        source.resume()
        return source
    }
}
