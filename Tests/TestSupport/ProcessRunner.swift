import Foundation

/// Runs programs from tests and captures what a user would see.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum Run {
    /// The `cairn` binary built next to the test bundle (`swift build` builds it; `scripts/test.sh` runs that first).
    public static var cairnBinary: String {
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDir, bundleDir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("cairn").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/debug/cairn").standardized.path
        return fallback
    }

    /// Runs a program to completion. `environment` is added to (and overrides) a clean base environment.
    @discardableResult
    public static func program(_ path: String, _ args: [String], environment: [String: String] = [:],
                               inheritEnvironment: Bool = false, stdin: String? = nil,
                               cwd: String? = nil) throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        var env = inheritEnvironment ? ProcessInfo.processInfo.environment
            : ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/root"]
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        if let stdin {
            let inp = Pipe()
            p.standardInput = inp
            try p.run()
            inp.fileHandleForWriting.write(Data(stdin.utf8))
            try inp.fileHandleForWriting.close()
        } else {
            p.standardInput = FileHandle.nullDevice
            try p.run()
        }
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        let errData = Locked<Data>(Data())
        let t = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        t.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !errData.isSet { usleep(1000) }
        return ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData.value, as: UTF8.self))
    }

    /// Runs `cairn` with arguments.
    @discardableResult
    public static func cairn(_ args: [String], environment: [String: String] = [:], cwd: String? = nil) throws -> ProcessResult {
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

/// A value set once by another thread.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    private var done = false
    init(_ v: T) { self.v = v }
    func set(_ nv: T) { lock.lock(); v = nv; done = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return done }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
}
