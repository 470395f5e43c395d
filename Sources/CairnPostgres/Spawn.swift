import CairnBase
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Starting processes that outlive the caller (the WAL prefetcher). Tools that Cairn waits for run through
/// swift-subprocess (`ToolRunner`).
public enum Spawn {
    /// Starts `path args` in a new session with stdin, stdout and stderr on /dev/null (or stderr appended to
    /// `logFile`), and does not wait for it.
    public static func detached(_ path: String, _ args: [String], logFile: String? = nil) throws {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // A new session, no blocked signals, default dispositions (the caller's threads may block some).
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        let setsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc; needs _GNU_SOURCE in C)
        posix_spawnattr_setflags(&attr, Int16(Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | setsid))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, logFile ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o600)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw CairnError(.internal, "cannot start \(path): \(String(cString: strerror(rc)))")
        }
    }

    /// The path of the running executable.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
