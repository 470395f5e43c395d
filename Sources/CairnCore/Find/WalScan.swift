import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// Decodes chunks of archived WAL with `pg_waldump`: each chunk's segments are fetched from the repository (the
/// `wal-fetch` path: decompressed, decrypted, verified) into a private folder, decoded, and removed, `parallelism`
/// chunks at a time, so at most `parallelism × (chunk size + 1)` segments are on disk at once.
enum WalScan {
    /// The activity of every chunk, merged, and the problems met (a chunk that could not be decoded whole).
    static func run(
        _ plan: FindPlan, repo: any Repository, pipeline: Pipeline, tools: ToolRunner, workFolder: String,
        parallelism: Int
    ) async throws -> (WalActivity, [String]) {
        var activity = WalActivity()
        var problems: [String] = []
        try await withThrowingTaskGroup(of: (WalActivity, String?).self) { group in
            var next = 0
            func submit() {
                guard next < plan.chunks.count else { return }
                let (chunk, folder) = (plan.chunks[next], workFolder + "/chunk-\(next)")
                next += 1
                group.addTask {
                    try await decode(chunk, repo: repo, pipeline: pipeline, tools: tools, folder: folder)
                }
            }
            for _ in 0..<max(1, parallelism) { submit() }
            while let (a, problem) = try await group.next() {
                activity.merge(a)
                if let problem { problems.append(problem) }
                try Interruption.check()
                submit()
            }
        }
        return (activity, problems)
    }

    /// One chunk: fetch, decode the records that start in it, remove the files.
    static func decode(
        _ chunk: FindPlan.Chunk, repo: any Repository, pipeline: Pipeline, tools: ToolRunner, folder: String
    ) async throws -> (WalActivity, String?) {
        let files = chunk.segments + (chunk.next.map { [$0] } ?? [])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await Blocking.run {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for s in files {
                try Interruption.check()
                _ = try WalFetch.download(
                    repo: repo, pipeline: pipeline, file: .segment(s.name), to: folder + "/" + s.name)
            }
        }
        let end = chunk.end
        let args = ["--path=\(folder)", files[0].name, files.last!.name]
        let box = ActivityBox()
        do {
            try await tools.runReadingOutput("pg_waldump", args, environment: ["TZ": "UTC"]) { fd in
                try LineReader.forEach(fd) { bytes in
                    guard WalDumpParser.mayMatter(bytes) else { return }
                    let line = Substring(String(decoding: bytes, as: UTF8.self))
                    if let r = WalDumpParser.parse(line), r.lsn < end { box.add(r) }
                }
            }
            return (box.activity, nil)
        } catch let e as CairnError where e.code == .pgTool && e.message.contains("error in WAL record") {
            // The WAL ends early (a timeline switch, an unfinished segment): what came before it was read.
            return (box.activity, "\(files[0].name)…\(files.last!.name): \(e.message)")
        }
    }
}

/// The activity a chunk's decoder gathers (kept when pg_waldump stops early).
final class ActivityBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = WalActivity()
    func add(_ r: WalDumpRecord) { lock.lock(); value.add(r); lock.unlock() }
    var activity: WalActivity { lock.lock(); defer { lock.unlock() }; return value }
}

/// Reads a descriptor line by line (bounded memory: one 256 KiB buffer and the current line).
enum LineReader {
    static func forEach(_ fd: Int32, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var buf = [UInt8](repeating: 0, count: 256 << 10)
        var pending = [UInt8]()
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw CairnError(.localIO, "cannot read pg_waldump's output: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            var start = 0
            while let i = buf[start..<n].firstIndex(of: UInt8(ascii: "\n")) {
                if pending.isEmpty {
                    try body(buf[start..<i])
                } else {
                    pending.append(contentsOf: buf[start..<i])
                    try body(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                start = i + 1
            }
            pending.append(contentsOf: buf[start..<n])
        }
        if !pending.isEmpty { try body(pending[...]) }
    }
}
