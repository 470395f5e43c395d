import CairnBase
import Foundation
import Subprocess

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Runs PostgreSQL's client tools (pg_dump, pg_dumpall, pg_restore, psql) from the configured bin directory,
/// streaming their output or input through pipes that Cairn reads or writes on a dedicated thread.
/// Standard error is kept (in an anonymous temporary file, so any amount fits) for the error message.
public struct ToolRunner: Sendable {
    public let binDirectory: String

    public init(binDirectory: String) { self.binDirectory = binDirectory }

    /// What a finished tool printed.
    public struct Output: Sendable {
        public var stdout: String
        public var stderr: String
    }

    func path(_ tool: String) throws -> String {
        let p = binDirectory + "/" + tool
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw CairnError(
                .pgTool, "\(tool) not found in \(binDirectory)",
                hint:
                    "set cluster.bin_directory to the folder with PostgreSQL's client programs (e.g. /usr/lib/postgresql/15/bin)"
            )
        }
        return p
    }

    /// Runs `tool` with its standard output on a pipe that `consume` reads (on its own thread) until end of file.
    /// Throws the consumer's error if it failed, else `pg.tool` with the tool's messages if it exited non-zero.
    public func runReadingOutput<T: Sendable>(
        _ tool: String, _ args: [String], environment: [String: String] = [:],
        consume: @escaping @Sendable (Int32) throws -> T
    ) async throws -> T {
        let exe = try path(tool)
        let (readFD, writeFD) = try makePipe()
        let errFD = try anonymousFile()
        defer { close(errFD) }
        async let consumed: Result<T, any Error> = Blocking.run {
            defer { close(readFD) }
            return Result { try consume(readFD) }
        }
        let status: TerminationStatus
        do {
            status = try await Subprocess.run(
                .path(FilePath(exe)), arguments: Arguments(args), environment: env(environment),
                input: .none,
                output: .fileDescriptor(FileDescriptor(rawValue: writeFD), closeAfterSpawningProcess: true),
                error: .fileDescriptor(FileDescriptor(rawValue: errFD), closeAfterSpawningProcess: false)
            ).terminationStatus
        } catch {
            _ = try? await consumed
            throw CairnError(.pgTool, "cannot run \(tool): \(error)", cause: error)
        }
        let result = try await consumed
        if case .failure(let e) = result { throw e }
        try check(tool, status, stderr: readAll(errFD))
        return try result.get()
    }

    /// Runs `tool` with its standard input fed by `produce` (writing to the given descriptor on its own thread).
    public func runWritingInput(
        _ tool: String, _ args: [String], environment: [String: String] = [:],
        produce: @escaping @Sendable (Int32) throws -> Void
    ) async throws -> Output {
        let exe = try path(tool)
        let (readFD, writeFD) = try makePipe()
        let outFD = try anonymousFile(), errFD = try anonymousFile()
        defer { close(outFD); close(errFD) }
        async let produced: Result<Void, any Error> = Blocking.run {
            defer { close(writeFD) }
            return Result { try produce(writeFD) }
        }
        let status: TerminationStatus
        do {
            status = try await Subprocess.run(
                .path(FilePath(exe)), arguments: Arguments(args), environment: env(environment),
                input: .fileDescriptor(FileDescriptor(rawValue: readFD), closeAfterSpawningProcess: true),
                output: .fileDescriptor(FileDescriptor(rawValue: outFD), closeAfterSpawningProcess: false),
                error: .fileDescriptor(FileDescriptor(rawValue: errFD), closeAfterSpawningProcess: false)
            ).terminationStatus
        } catch {
            _ = try? await produced
            throw CairnError(.pgTool, "cannot run \(tool): \(error)", cause: error)
        }
        let result = try await produced
        let stderr = readAll(errFD)
        // A tool that stopped reading early makes the producer fail with EPIPE: report the tool's own error first.
        try check(tool, status, stderr: stderr)
        if case .failure(let e) = result { throw e }
        return Output(stdout: readAll(outFD), stderr: stderr)
    }

    /// Runs `tool` to completion and returns what it printed; `pg.tool` on a non-zero exit.
    public func run(_ tool: String, _ args: [String], environment: [String: String] = [:]) async throws -> Output {
        try await runWritingInput(tool, args, environment: environment) { _ in }
    }

    /// The major version of a tool (`pg_dump --version` → 15).
    public func majorVersion(_ tool: String) async throws -> Int {
        let out = try await run(tool, ["--version"]).stdout
        let number = out.split(separator: " ").last { $0.first?.isNumber == true } ?? ""
        return Int(number.split(separator: ".").first ?? "") ?? 0
    }

    private func env(_ extra: [String: String]) -> Environment {
        var updates: [Environment.Key: String?] = [:]
        for (k, v) in extra { updates[Environment.Key(stringLiteral: k)] = v }
        return .inherit.updating(updates)
    }

    private func check(_ tool: String, _ status: TerminationStatus, stderr: String) throws {
        guard !status.isSuccess else { return }
        let lines = stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        let detail = lines.suffix(3).joined(separator: " / ")
        let how: String
        switch status {
        case .exited(let code): how = "exit \(code)"
        case .signaled(let sig): how = "signal \(sig)"
        }
        throw CairnError(.pgTool, "\(tool) failed (\(how))\(detail.isEmpty ? "" : ": \(detail)")")
    }

    private func makePipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw CairnError(.localIO, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    private func anonymousFile() throws -> Int32 {
        var template = Array((NSTemporaryDirectory() + "cairn-tool-XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw CairnError(.localIO, "cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    private func readAll(_ fd: Int32) -> String {
        lseek(fd, 0, SEEK_SET)
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
