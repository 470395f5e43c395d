import CairnBase
import CairnCore
import Foundation

/// A one-line progress display on an interactive terminal (bytes, rate); silent otherwise.
final class ProgressLine: @unchecked Sendable {
    private let label: String
    private let enabled: Bool
    private let lock = NSLock()
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var phase = ""
    private var drawn = false

    init(label: String, enabled: Bool = true) {
        self.label = label
        self.enabled = enabled && isatty(2) == 1
    }

    /// Callbacks for a backup.
    var callbacks: BackupOperation.Progress {
        BackupOperation.Progress(onBytes: { [self] in bytes($0) }, onPhase: { [self] in setPhase($0) })
    }

    func setPhase(_ p: String) {
        lock.lock(); defer { lock.unlock() }
        phase = p
        draw(text: "\(label): \(p)")
    }

    func bytes(_ n: Int64) {
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.25 else { return }
        lastDraw = now
        let rate = Double(n) / max(0.001, now.timeIntervalSince(start))
        draw(text: "\(label): \(Units.formatBytes(n)) at \(Units.formatBytes(Int64(rate)))/s")
    }

    private func draw(text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        drawn = true
    }

    func done() {
        lock.lock(); defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
    }
}
