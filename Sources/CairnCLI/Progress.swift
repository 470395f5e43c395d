import CairnBase
import CairnCore
import Foundation

/// Progress of a long operation on stderr: bytes, rate, percentage and ETA when the total is known.
/// On a terminal it is one line redrawn in place; otherwise Cairn stays quiet, unless `--verbose` asks for a
/// plain line every 30 seconds (and at each phase), which suits logs. `--quiet` and `--json` turn it off.
final class ProgressLine: @unchecked Sendable {
    enum Mode { case terminal, lines, off }

    private let label: String
    private let mode: Mode
    private let lock = NSLock()
    /// When the first bytes arrived: the rate leaves out the time before (a checkpoint, planning).
    private var firstBytes: Date?
    private let interval: Double
    private var lastDraw = Date.distantPast
    private var total: Int64?
    private var current: Int64 = 0
    private var drawn = false

    init(label: String, global: GlobalOptions, json: Bool = false) {
        self.label = label
        mode = json || global.quiet ? .off : isatty(2) == 1 ? .terminal : global.verbose ? .lines : .off
        interval = mode == .terminal ? 0.25 : 30
    }

    /// Callbacks for a backup.
    var callbacks: BackupOperation.Progress {
        BackupOperation.Progress(
            onBytes: { [self] in bytes($0) }, onPhase: { [self] in setPhase($0) }, onTotal: { [self] in setTotal($0) })
    }

    func setPhase(_ p: String) {
        lock.lock(); defer { lock.unlock() }
        emit("\(label): \(p)")
    }

    /// The expected total of `bytes` (an estimate may be exceeded).
    func setTotal(_ n: Int64) {
        lock.lock(); defer { lock.unlock() }
        total = n
    }

    func bytes(_ n: Int64) {
        lock.lock(); defer { lock.unlock() }
        current = n
        let now = Date()
        let since = firstBytes ?? now
        firstBytes = since
        guard now.timeIntervalSince(lastDraw) >= interval, now.timeIntervalSince(since) >= 0.5 else { return }
        lastDraw = now
        emit(Self.describe(label: label, bytes: n, total: total, elapsed: now.timeIntervalSince(since)))
    }

    /// "backup: 1.2 GiB of 3.4 GiB (35%) at 120 MiB/s, ETA 18s".
    static func describe(label: String, bytes n: Int64, total: Int64?, elapsed: Double) -> String {
        let rate = Double(n) / max(0.001, elapsed)
        var s = "\(label): \(Units.formatBytes(n))"
        if let total, total > 0 {
            s += " of \(Units.formatBytes(total)) (\(min(100, Int(Double(n) * 100 / Double(total))))%)"
        }
        s += " at \(Units.formatBytes(Int64(rate)))/s"
        if let total, total > 0, rate > 0 {
            s += n >= total ? ", finishing" : ", ETA \(Units.formatDuration((Double(total - n) / rate).rounded(.up)))"
        }
        return s
    }

    private func emit(_ text: String) {
        switch mode {
        case .off: return
        case .terminal:
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
            drawn = true
        case .lines:
            FileHandle.standardError.write(Data("\(Timestamp.format(Date())) \(text)\n".utf8))
        }
    }

    func done() {
        lock.lock(); defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
    }
}
