import Foundation

/// Runs programs from tests and captures what a user would see.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// The project's folders, for tests that read its scripts, runbooks and packaging.
public enum SourceTree {
    /// The project's root (this file is `Tests/TestSupport/ProcessRunner.swift`).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized.path

    /// A path under the project's root.
    public static func path(_ relative: String) -> String { root + "/" + relative }
}

public enum Run {
    /// The `cairn` binary built next to the test bundle (`swift build` builds it; `scripts/test.sh` runs that first).
    public static var cairnBinary: String {
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDir, bundleDir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("cairn").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return SourceTree.path(".build/debug/cairn")
    }

    /// A copy of the `cairn` binary that the `postgres` OS user can run (archive_command, restore_command).
    public static var installedCairn: String {
        installLock.lock()
        defer { installLock.unlock() }
        // One folder per build: checkouts sharing the test services must not overwrite each other's binary.
        let build = cairnBinary.split(separator: "/").dropLast().joined(separator: "_")
        let dir = (TestEnvironment.env["CAIRN_TEST_STATE"] ?? NSTemporaryDirectory() + "cairn-tests") + "/bin/" + build
        let dest = dir + "/cairn"
        if !installed {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: dest)
            if let binary = FileManager.default.contents(atPath: cairnBinary) { try? writeExecutable(binary, to: dest) }
            chmod((dir as NSString).deletingLastPathComponent, 0o755)
            chmod(dir, 0o755)
            installed = true
        }
        return dest
    }
    nonisolated(unsafe) private static var installed = false

    /// Writes a program that tests then run, with close-on-exec: a child that another test spawns while the file is
    /// being written must not inherit the write descriptor, or running the program fails with "Text file busy".
    public static func writeExecutable(_ bytes: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                offset += n
            }
        }
        fchmod(fd, 0o755)
    }

    /// A shell script written as `writeExecutable` does.
    public static func writeScript(_ text: String, to path: String) throws {
        try writeExecutable(Data(text.utf8), to: path)
    }
    private static let installLock = NSLock()

    /// Runs `cairn` as the `postgres` OS user.
    @discardableResult
    public static func cairnAsPostgres(_ args: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try program("/usr/sbin/runuser", ["-u", "postgres", "--", installedCairn] + args, environment: environment)
    }

    /// Runs a program to completion. `environment` is added to (and overrides) a clean base environment.
    ///
    /// Uses posix_spawn and waitpid directly: Foundation's Process reaps children through Dispatch, which starves
    /// when parallel tests block the (two) cooperative threads. Output is drained while the child runs and once
    /// more after it exits, never waiting for end-of-file (a daemon the child started may hold the pipe open).
    @discardableResult
    public static func program(
        _ path: String, _ args: [String], environment: [String: String] = [:],
        inheritEnvironment: Bool = false, stdin: String? = nil,
        cwd: String? = nil
    ) throws -> ProcessResult {
        var env =
            inheritEnvironment
            ? ProcessInfo.processInfo.environment
            : [
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root"
            ]
        for (k, v) in environment { env[k] = v }
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else { throw TestFailure("pipe failed") }
        for fd in outPipe + errPipe + inPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        // A working directory goes through the shell (posix_spawn's chdir action is a GNU extension).
        let (exe, argList) =
            cwd.map { ("/bin/sh", ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0, path] + args) } ?? (
                path, [path] + args
            )
        let argv: [UnsafeMutablePointer<CChar>?] = argList.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var attr = cleanSignalsAttributes()
        defer { posix_spawnattr_destroy(&attr) }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, argv, envp)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw TestFailure("cannot run \(path): \(String(cString: strerror(rc)))")
        }
        if let stdin { _ = stdin.utf8CString.dropLast().withUnsafeBytes { write(inPipe[1], $0.baseAddress, $0.count) } }
        close(inPipe[1])
        let fds = [outPipe[0], errPipe[0]]
        defer { fds.forEach { close($0) } }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var buffers = [[UInt8](), [UInt8]()]
        var open = [true, true]
        var buf = [UInt8](repeating: 0, count: 65536)
        func drain() {
            for (i, fd) in fds.enumerated() where open[i] {
                while true {
                    let n = read(fd, &buf, buf.count)
                    if n > 0 { buffers[i].append(contentsOf: buf[0..<n]); continue }
                    if n == 0 { open[i] = false }
                    break
                }
            }
        }
        var status: Int32 = 0
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid || (w < 0 && errno != EINTR) { break }
            var pfds = fds.enumerated().filter { open[$0.offset] }.map {
                pollfd(fd: $0.element, events: Int16(POLLIN), revents: 0)
            }
            if pfds.isEmpty { usleep(10_000) } else { _ = poll(&pfds, nfds_t(pfds.count), 50) }
            drain()
        }
        drain()
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ProcessResult(
            status: code, stdout: String(decoding: buffers[0], as: UTF8.self),
            stderr: String(decoding: buffers[1], as: UTF8.self))
    }

    /// Starts a program without waiting (output discarded); returns its pid. Reap it with `wait(_:)`.
    public static func spawn(_ path: String, _ args: [String]) throws -> pid_t {
        var attr = cleanSignalsAttributes()
        defer { posix_spawnattr_destroy(&attr) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
        guard rc == 0 else { throw TestFailure("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Starts `cairn ARGS` as the postgres OS user without a wrapper process (setpriv execs in place), so the
    /// returned pid is cairn itself and `kill -9` hits it.
    public static func spawnCairnAsPostgres(_ args: [String]) throws -> pid_t {
        try spawn("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", installedCairn] + args)
    }

    /// Spawn attributes for a child with no blocked signals and default dispositions: test threads may block
    /// signals (a pgbench with SIGALRM blocked would never stop). Destroy them after use.
    static func cleanSignalsAttributes() -> posix_spawnattr_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return attr
    }

    /// Waits for a spawned program; returns its exit code (128 + signal when killed).
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs `cairn` with arguments.
    @discardableResult
    public static func cairn(
        _ args: [String], environment: [String: String] = [:], cwd: String? = nil
    ) throws -> ProcessResult {
        try program(cairnBinary, args, environment: environment, cwd: cwd)
    }

    /// Runs a shell command as root (tests run as root in CI); fails the caller on a non-zero exit when `check`.
    @discardableResult
    public static func shell(_ command: String, check: Bool = true) throws -> ProcessResult {
        let r = try program("/bin/bash", ["-c", command], inheritEnvironment: true)
        if check && r.status != 0 {
            throw TestFailure("command failed (\(r.status)): \(command)\n\(r.stdout)\n\(r.stderr)")
        }
        return r
    }
}

/// A test-setup failure with a readable message.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
