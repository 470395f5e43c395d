import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation
import Logging

/// `archive_command = 'cairn wal-push %p'`.
struct WalPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-push",
        abstract: "Archive one WAL file (for archive_command: cairn wal-push %p).",
        discussion: """
            Compresses the file, stores it create-only, confirms size and digest, and only then exits 0. A file already \
            stored with the same content is a success; with different content it is an error (wal.conflict) and \
            nothing is overwritten. Every request has a deadline (limits.request_timeout), so the archiver never hangs. \
            With archive.async, a backlog of .ready files starts a background worker (wal-push-ahead) that pushes \
            them in parallel (limits.parallelism); wal-push then acknowledges each file from the worker's record of \
            its confirmed push.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Path of the WAL file (%p).") var path: String
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() async throws {
        let ctx = try AppContext.load(global)
        let path = self.path
        let async = ctx.config.archive.async
        let configPath = ctx.absoluteConfigPath
        let wait = ctx.config.limits.requestTimeout
        let conninfo = ctx.config.cluster.connection
        let maxBacklog = ctx.config.archive.maxBacklog
        let r = try await Blocking.run {
            let repos = try ctx.makeRepositories()
            let r = try WalPush.run(
                repos: repos, pipeline: ctx.makePipeline(), path: path, async: async, maxBacklog: maxBacklog,
                startWorker: {
                    let dir = (path as NSString).deletingLastPathComponent
                    try? Spawn.detached(
                        Spawn.currentExecutable, ["--config", configPath, "wal-push-ahead", dir.isEmpty ? "." : dir],
                        logFile: WalPushAhead.spool(walDirectory: dir) + "/worker.log")
                }, waitLimit: wait)
            // A new timeline's history: record whether production or a copy promoted.
            if case .history(let tli) = WALFileName(r.file) {
                for m in repos.members where !(r.behind ?? []).contains(m.name) {
                    TimelineWitness.witnessPromotion(
                        timeline: tli, dataDirectory: TimelineWitness.dataDirectory(ofWALPath: path),
                        conninfo: conninfo, repo: m.repo, clock: SystemClock())
                }
            }
            return r
        }
        if json { try Output.json(r) }
    }
}

/// `restore_command = 'cairn wal-fetch %f %p'`.
struct WalFetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-fetch",
        abstract: "Fetch one WAL file (for restore_command: cairn wal-fetch %f %p).",
        discussion: """
            Exit codes follow PostgreSQL's restore_command contract: 0 when the file was written to %p, 1 when the \
            repository does not have it (the end of the archive; said only after the repository's cairn.json was \
            read, so an unmounted or moved repository is an error), 126 on any other error, which makes PostgreSQL \
            stop recovery instead of ending it early. Segments are prefetched in parallel ahead of replay \
            (limits.prefetch), fsynced into a spool, and checked again (size, page header, CRC-32C) before one is \
            served; a bad spooled copy is fetched again.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Name of the WAL file (%f).") var name: String
    @Argument(help: "Where to write it (%p).") var path: String
    @Option(name: .long, help: ArgumentHelp("The restore's lease, renewed while recovery runs.", visibility: .hidden))
    var lease: String?

    func run() async throws {
        do {
            let ctx = try AppContext.load(global)
            let (name, path) = (self.name, self.path)
            let configPath = ctx.absoluteConfigPath
            let prefetch = ctx.config.limits.prefetch
            try await Blocking.run {
                let repos = try ctx.makeRepositories()
                let r = try WalFetch.run(repos: repos, pipeline: ctx.makePipeline(), name: name, dest: path)
                // A segment's size is the cluster's segment size: no need to read cairn.json for it.
                if case .segment = WALFileName(name), prefetch > 0, r.size > 0,
                    let seg = WALSegment(name: name, segmentSize: r.size)
                {
                    let spool = WalFetch.spoolDirectory(forDestination: path)
                    WalFetch.pruneSpool(spool, before: seg.next.name)
                    if !SpoolLock.held(spool) {
                        try? Spawn.detached(
                            Spawn.currentExecutable,
                            [
                                "--config", configPath, "wal-prefetch", seg.next.name, "--spool", spool,
                                "--count", String(prefetch)
                            ])
                    }
                }
                if let lease {
                    LeaseRenewal.renewIfDue(
                        lease, repos: repos, marker: WalFetch.spoolDirectory(forDestination: path) + "/lease-renewed")
                }
                ctx.logger.info("fetched", metadata: ["file": "\(r.file)", "from": "\(r.outcome.rawValue)"])
            }
        } catch let e as CairnError where e.code == .walNotFound {
            throw CommandExit(code: 1)
        } catch let e as CommandExit {
            throw e
        } catch {
            _ = Output.report(error)
            throw CommandExit(code: ErrorCode.walFetchFatalExitCode)
        }
    }
}

/// The background prefetcher that `wal-fetch` starts; also removes the spool at the end of recovery.
struct WalPrefetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-prefetch",
        abstract: "Download WAL segments ahead of replay into a spool (started by wal-fetch).",
        shouldDisplay: false)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The first segment to prefetch.") var first: String?
    @Option(name: .long, help: "The spool directory.") var spool: String = "pg_wal/cairn-prefetch"
    @Option(name: .long, help: "How many segments.") var count: Int = 16
    @Flag(name: .long, help: "Remove the spool (for recovery_end_command).") var removeSpool = false
    @Option(name: .long, help: "Release the restore's lease (for recovery_end_command).") var releaseLease: String?

    func run() async throws {
        if let releaseLease {
            let ctx = try AppContext.load(global)
            await Blocking.runIgnoringErrors {
                // The restore took its lease in the repository it restored from.
                for m in (try? ctx.makeRepositories())?.members ?? [] { Lease.release(releaseLease, repo: m.repo) }
            }
        }
        if removeSpool { return WalFetch.removeSpool(spool) }
        guard let first else { throw ValidationError("give the first segment to prefetch") }
        let ctx = try AppContext.load(global)
        let (spool, count) = (self.spool, self.count)
        _ = try await Blocking.run {
            let repos = try ctx.makeRepositories()
            let info = try repos.firstSucceeding("reading cairn.json") { try RepositoryInfo.require(from: $0.repo) }
            guard let seg = WALSegment(name: first, segmentSize: info.walSegmentSize) else {
                throw CairnError(.walInvalidName, "\(first) is not a WAL segment name")
            }
            return try WalFetch.prefetch(
                repos: repos, pipeline: ctx.makePipeline(), info: info, first: seg, count: count, spool: spool,
                parallelism: ctx.config.limits.parallelism)
        }
    }
}

/// The push-ahead worker that `wal-push` starts when files wait (archive.async).
struct WalPushAheadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-push-ahead",
        abstract: "Push waiting WAL files in parallel and record each confirmed push (started by wal-push).",
        shouldDisplay: false)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The WAL directory (pg_wal).") var walDirectory: String = "pg_wal"

    func run() async throws {
        let ctx = try AppContext.load(global)
        let dir = walDirectory
        // One segment per thread already: zstd's own worker threads would only add overhead.
        var pipeline = ctx.makePipeline()
        pipeline.workers = 0
        _ = try await Blocking.run { [pipeline] in
            try WalPushAhead.work(
                repos: try ctx.makeRepositories(), pipeline: pipeline, walDirectory: dir,
                parallelism: ctx.config.limits.parallelism, maxBacklog: ctx.config.archive.maxBacklog)
        }
    }
}

/// Keeps a restore's lease alive while PostgreSQL replays: renewed at most every 10 minutes, remembered by the
/// modification time of a marker file in the spool.
enum LeaseRenewal {
    static func renewIfDue(_ id: String, repos: RepositorySet, marker: String, every: Double = 600) {
        var st = stat()
        if stat(marker, &st) == 0, Date().timeIntervalSince1970 - Double(st.st_mtim.tv_sec) < every { return }
        do {
            // The lease is in the repository the restore came from (renewing is a no-op where it is not).
            var failures: [Error] = []
            for m in repos.members {
                do { try Lease.renew(id, repo: m.repo, ttl: RestoreCommand.leaseTTL, clock: SystemClock()) } catch {
                    failures.append(error)
                }
            }
            if failures.count == repos.members.count, let first = failures.first { throw first }
            mkdir((marker as NSString).deletingLastPathComponent, 0o700)
            _ = FileManager.default.createFile(atPath: marker, contents: nil)
            utimes(marker, nil)
        } catch {
            Logger(label: "cairn.wal-fetch").warning(
                "could not renew the restore's lease \(id): \(describeError(error).message)")
        }
    }
}
