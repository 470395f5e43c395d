import CairnBase
import Foundation
import Synchronization

/// Scratch clusters of running drills, so an interrupt (SIGINT/SIGTERM) can stop and remove them before the
/// process exits. Stopping uses the postmaster's pid (SIGQUIT: immediate shutdown), so it needs no subprocess.
public enum ScratchCleanup {
    private static let active = Mutex<[String: (data: String, keep: Bool)]>([:])  // scratch folder → data directory

    /// `keep`: a kept scratch folder (`keep_scratch`), whose server is stopped but whose files stay.
    static func register(folder: String, data: String, keep: Bool = false) {
        active.withLock { $0[folder] = (data, keep) }
    }

    /// Stops the scratch server (if running) and removes the folder (unless it is kept).
    static func clean(folder: String) {
        let entry = active.withLock { $0.removeValue(forKey: folder) }
        if let entry { stopPostmaster(entry.data) }
        if entry?.keep != true { try? FileManager.default.removeItem(atPath: folder) }
    }

    /// Stops and removes every registered scratch cluster (from a signal handler's queue); returns their folders.
    @discardableResult
    public static func cleanAll() -> [String] {
        let folders = active.withLock { Array($0.keys) }
        for folder in folders { clean(folder: folder) }
        return folders
    }

    /// Immediate shutdown of the postmaster of `data`, waiting up to 10 s for it to go.
    static func stopPostmaster(_ data: String) {
        guard let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8),
            let pid = Int32(text.split(separator: "\n").first ?? ""), pid > 1
        else { return }
        guard kill(pid, SIGQUIT) == 0 else { return }
        for _ in 0..<100 {
            if kill(pid, 0) != 0 { return }
            usleep(100_000)
        }
        kill(pid, SIGKILL)
    }
}
