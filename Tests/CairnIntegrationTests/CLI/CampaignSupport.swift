import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import TestSupport
import Testing

/// A reproducible random source (SplitMix64). Every campaign prints its seed; `CAIRN_CRASH_SEED=N` replays the
/// same random choices (kill delays, fault scripts). Timing still varies from run to run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Settings and bookkeeping shared by the crash and fault campaigns.
enum Campaign {
    /// Trials per operation: `CAIRN_CRASH_TRIALS` (default 2, the CI share; `scripts/crash-campaign.sh` runs 30).
    static var trials: Int { max(1, Int(TestEnvironment.env["CAIRN_CRASH_TRIALS"] ?? "") ?? 2) }

    /// The campaign's generator; the seed is printed (and goes into every failure message via the caller).
    static func generator(_ name: String) -> (SeededGenerator, UInt64) {
        let seed =
            TestEnvironment.env["CAIRN_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print(
            "[\(name)] seed \(seed), \(trials) trials; replay with CAIRN_CRASH_SEED=\(seed) CAIRN_CRASH_TRIALS=\(trials)"
        )
        var h: UInt64 = seed
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return (SeededGenerator(seed: h), seed)
    }

    /// A kill point: uniform over the whole baseline run (plus 15 %, so some runs finish first). Odd trials skip
    /// the first second, which locked commands spend settling their repository lock, so that the busy part of
    /// the run is hit often.
    static func killDelay(trial: Int, baseline: Double, using rng: inout SeededGenerator) -> Double {
        let end = max(0.05, baseline * 1.15)
        let start = trial % 2 == 1 && baseline > 1.5 ? min(1.0, end / 2) : 0
        return Double.random(in: start...end, using: &rng)
    }

    /// Runs `body` and returns its result and wall time in seconds.
    static func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let t = Date()
        let r = try body()
        return (r, Date().timeIntervalSince(t))
    }
}

/// One `cairn` process started in the background as the postgres user, with its output kept in files.
/// The shell execs env, env execs setpriv, setpriv execs cairn: `pid` is cairn itself, so `kill -9` hits it.
struct CairnProcess {
    let pid: pid_t
    let out: String
    let started = Date()

    static func start(config: String, _ args: [String], quiet: Bool = false) throws -> CairnProcess {
        let out = try TestEnvironment.tempDirectory("proc") + "/out"
        let argv = ([Run.installedCairn, "--config", config] + (quiet ? ["--quiet"] : []) + args).map(
            ShellQuoting.quote)
        let cmd =
            "exec env -i PATH=/usr/bin:/bin HOME=/tmp /usr/bin/setpriv --reuid=postgres --regid=postgres --init-groups "
            + argv.joined(separator: " ") + " >\(out).stdout 2>\(out).stderr"
        return CairnProcess(pid: try Run.spawn("/bin/sh", ["-c", cmd]), out: out)
    }

    /// The exit status, or nil if it still runs after `seconds` (it is left running).
    func wait(atMost seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        repeat {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            if w < 0 && errno != EINTR { return -1 }  // not our child (any more): never wait for it
            usleep(10_000)
        } while Date() < deadline
        return nil
    }

    /// The exit status, or nil if it still ran after `seconds`: a hang. Then every thread's stack is kept (see
    /// `backtrace`) and the process is killed.
    func waitOrKillHung(atMost seconds: Double) -> Int32? {
        if let done = wait(atMost: seconds) { return done }
        let bt = try? Run.program("/usr/bin/gdb", ["-p", String(pid), "-batch", "-ex", "thread apply all bt 25"])
        try? (bt?.stdout ?? "gdb not available").write(toFile: out + ".backtrace", atomically: true, encoding: .utf8)
        kill(pid, SIGKILL)
        Run.wait(pid)
        return nil
    }

    /// The threads' stacks of a process `waitOrKillHung` found hung.
    var backtrace: String {
        let text = (try? String(contentsOfFile: out + ".backtrace", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("#") || $0.hasPrefix("Thread") }.joined(
            separator: "\n")
    }

    /// SIGKILL after `delay` seconds; returns the exit status (137 when the kill landed, 0 if it finished first).
    func kill9(after delay: Double) -> Int32 {
        if let done = wait(atMost: delay) { return done }  // finished (or failed) before the kill point
        kill(pid, SIGKILL)
        return Run.wait(pid)
    }

    var stdout: String { (try? String(contentsOfFile: out + ".stdout", encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: out + ".stderr", encoding: .utf8)) ?? "" }
}

/// How many trials of one operation ended how; recorded with `Measurements.record`.
struct Tally {
    let name: String
    let seed: UInt64
    var killed = 0, finishedFirst = 0, other: [Int32: Int] = [:]

    mutating func add(_ status: Int32) {
        if status == 128 + SIGKILL {
            killed += 1
        } else if status == 0 {
            finishedFirst += 1
        } else {
            other[status, default: 0] += 1
        }
    }

    var total: Int { killed + finishedFirst + other.values.reduce(0, +) }

    func record() {
        let others = other.sorted { $0.key < $1.key }.map { "exit \($0.key): \($0.value)" }.joined(separator: ", ")
        let line =
            "crash campaign \(name): \(total) kill -9 trials (\(killed) hit mid-run, \(finishedFirst) finished before the kill"
            + (others.isEmpty ? "" : ", \(others)") + "), seed \(seed), all invariants held unless a test failed"
        print(line)
        Measurements.record([line])
    }
}

/// The workload whose data the final restore checks.
enum Workload {
    static func initialize(_ c: ScratchCluster, scale: Int) throws {
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s \(scale) -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        try c.psql("CREATE TABLE campaign (trial int, at timestamptz DEFAULT clock_timestamp(), v text)")
    }

    /// A change per trial, so every backup and segment differs.
    static func touch(_ c: ScratchCluster, _ trial: Int) throws {
        try c.psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 13 = \(trial % 13)")
        try c.psql("INSERT INTO campaign (trial, v) SELECT \(trial), md5(g::text) FROM generate_series(1, 2000) g")
    }

    static func digest(_ c: ScratchCluster) throws -> String {
        try c.psql(
            "SELECT (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts) || '/' || "
                + "(SELECT count(*) || ':' || md5(string_agg(trial || v, ',' ORDER BY trial, v)) FROM campaign)")
    }

    /// Once at the end: archive everything, restore the latest backup, compare the data.
    static func restoreAndCompare(_ c: ScratchCluster, _ context: String) throws {
        let expected = try digest(c)
        try c.switchAndWaitForArchive()
        let r = try c.restoreAndStart()
        defer { r.destroy() }
        #expect(try digest(r) == expected, "\(context): the restored data differ")
    }
}

/// Direct access to a test repository, bypassing cairn's command line (and any proxy in front of S3).
enum DirectRepository {
    /// The repository of `config`: its S3 prefix on the server its endpoint names (moto when the endpoint is
    /// moto's TLS one or a proxy), else the local folder.
    static func open(config: String, localRoot: String) throws -> any Repository {
        let text = try String(contentsOfFile: config, encoding: .utf8)
        func setting(_ name: String) -> String? {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix(name + ":") }
                .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
        if let prefix = setting("prefix") {
            let server = S3Server.serving(setting("endpoint") ?? "")
            return S3Repository(settings: TestEnvironment.s3Settings(prefix: prefix, server: server))
        }
        return LocalRepository(root: localRoot)
    }
}
