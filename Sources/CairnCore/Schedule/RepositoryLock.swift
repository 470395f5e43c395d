import CairnBase
import CairnStorage
import Foundation
import Synchronization

/// "One run of a kind at a time", across every host that shares the repository: a create-only object
/// `locks/<name>.json` with an expiry. A lock left by a crash is taken over once expired, or at once when it was
/// taken on this host by a process that no longer exists.
///
/// Not every S3-compatible store makes conditional writes atomic under concurrency (some emulators and older
/// servers let two simultaneous `If-None-Match: *` PUTs both succeed, the later one winning). So after a write
/// that succeeded on such a store, the lock waits `settle` seconds and reads the object back: only the holder it
/// names proceeds. A repository whose create-only writes are atomic by construction (``RepositoryCapabilities/atomicCreateOnly``:
/// the local folder, where the kernel refuses the second link) needs no wait.
public final class RepositoryLock: @unchecked Sendable {
    /// What the lock object says.
    public struct Holder: Codable, Sendable, Equatable {
        public var job: String
        public var host: String
        public var pid: Int32
        public var acquired: Date
        public var expires: Date
        /// Unique per acquisition: how a holder recognises its own lock (times lose precision in JSON).
        public var token: String

        public init(
            job: String, host: String, pid: Int32, acquired: Date, expires: Date, token: String = UUID().uuidString
        ) {
            self.job = job
            self.host = host
            self.pid = pid
            self.acquired = acquired
            self.expires = expires
            self.token = token
        }
    }

    public let name: String
    public let holder: Holder
    private let repo: any Repository
    private let released = Mutex(false)
    private let confirmed = Mutex(false)
    private let clock: any WallClock
    /// When the lock object was written, and how long to wait after that before reading it back.
    private let placed: Date
    private let settle: Double

    public static func key(_ name: String) -> String { Layout.lockKey(name) }

    /// Takes the lock of `job` for `ttl` seconds, runs `body`, releases it. Interrupted (the daemon stopping, a
    /// timeout, Ctrl-C), even while the lock is being taken: says so in the job history and frees the lock at
    /// once, so another host need not wait for it to expire.
    ///
    /// With `confirmLater`, `body` starts as soon as the lock object is written and receives the lock, which it
    /// must ``confirm()`` before it commits anything (a backup: before its manifest), so the settle time of a
    /// store whose create-only writes may not be atomic overlaps the job's work instead of delaying it.
    public static func holding<T>(
        _ job: String, repo: any Repository, ttl: Double, confirmLater: Bool = false,
        _ body: (RepositoryLock) async throws -> T
    ) async throws -> T {
        let token = UUID().uuidString
        let started = Date()
        let acquired = Mutex(false)
        let interrupt = Interruption.onInterrupt("the \(job) lock was released") {
            guard acquired.withLock({ $0 }) else { return RepositoryLock.release(job, token: token, repo: repo) }
            JobRecord(
                job: job, started: started, finished: Date(), outcome: .failed, subject: nil, bytes: nil,
                error: CairnError(.interrupted, "\(job) was interrupted by a signal and nothing was committed")
            ).save(to: repo)
            RepositoryLock.release(job, token: token, repo: repo)
        }
        defer { Interruption.remove(interrupt) }
        let lock = try await Blocking.run {
            try RepositoryLock.acquire(
                job, repo: repo, ttl: ttl, clock: SystemClock(), token: token, confirm: !confirmLater)
        }
        acquired.withLock { $0 = true }
        defer { lock.release() }
        return try await body(lock)
    }

    private init(name: String, holder: Holder, repo: any Repository, clock: any WallClock, settle: Double) {
        self.name = name
        self.holder = holder
        self.repo = repo
        self.clock = clock
        self.placed = clock.now()
        self.settle = settle
    }

    /// Takes the lock for `ttl` seconds, or throws `repo.locked` naming who holds it.
    /// `token` identifies this acquisition, so an interrupt arriving while it runs can still release it
    /// (``release(_:token:repo:)``). With `confirm: false` the lock is placed but not yet read back: the caller
    /// must ``confirm()`` it before it changes anything another run of the job could also change.
    public static func acquire(
        _ name: String, repo: any Repository, ttl: Double, clock: any WallClock,
        settle: Double? = nil, token: String = UUID().uuidString, confirm: Bool = true
    ) throws -> RepositoryLock {
        let now = clock.now()
        let me = Holder(
            job: name, host: ProcessInfo.processInfo.hostName, pid: getpid(), acquired: now,
            expires: now.addingTimeInterval(ttl), token: token)
        for attempt in 0..<2 {
            do {
                try repo.put(key(name), try SealedDocument.seal(me), options: .createOnly)
                let lock = RepositoryLock(
                    name: name, holder: me, repo: repo, clock: clock, settle: settle ?? settleSeconds(repo))
                if confirm { try lock.confirm() }
                return lock
            } catch let e as CairnError where e.code == .repoObjectExists && attempt == 0 {
                let other = (try? repo.getBytesIfExists(key(name))).flatMap { $0 }.flatMap {
                    try? SealedDocument.open(Holder.self, from: $0, what: key(name))
                }
                guard let other else { try? repo.delete([key(name)]); continue }  // unreadable: a broken lock
                let stale = other.expires < now || (other.host == me.host && kill(other.pid, 0) != 0 && errno == ESRCH)
                if stale {
                    try? repo.delete([key(name)])
                    continue
                }
                throw CairnError(
                    .repoLocked,
                    "\(name) is already running on \(other.host) (pid \(other.pid)) since \(Timestamp.format(other.acquired))",
                    hint:
                        "wait for it to finish; if that process is gone, the lock expires at \(Timestamp.format(other.expires))"
                )
            }
        }
        throw CairnError(.repoLocked, "\(name): another run took the lock at the same moment", hint: "try again")
    }

    /// Proves the lock is this run's: waits what is left of the settle time since it was placed (nothing when the
    /// work since then took longer), then reads the object back; `repo.locked` when another run's write replaced
    /// it. Once confirmed, later calls return at once.
    public func confirm() throws {
        guard !confirmed.withLock({ $0 }) else { return }
        let waited = clock.now().timeIntervalSince(placed)
        if settle > waited { clock.sleep(seconds: settle - waited) }
        let now = try repo.getBytesIfExists(Self.key(name)).flatMap {
            try? SealedDocument.open(Holder.self, from: $0, what: Self.key(name))
        }
        guard let now, now.token == holder.token else {
            released.withLock { $0 = true }  // the object is the other run's: never delete it
            throw CairnError(
                .repoLocked,
                "\(name): another run took the lock at the same moment\(now.map { " (\($0.host), pid \($0.pid))" } ?? "")",
                hint: "nothing to do: that run goes ahead")
        }
        confirmed.withLock { $0 = true }
    }

    /// How long a lock waits before reading its object back: nothing where create-only writes are atomic, one
    /// second elsewhere (far longer than a small PUT takes, so a simultaneous writer's PUT has landed by then).
    public static func settleSeconds(_ repo: any Repository) -> Double {
        repo.capabilities.contains(.atomicCreateOnly) ? 0 : 1
    }

    /// Who holds lock `name` now, or nil (a missing or unreadable lock object).
    public static func current(_ name: String, repo: any Repository) throws -> Holder? {
        guard let b = try repo.getBytesIfExists(key(name)) else { return nil }
        return try? SealedDocument.open(Holder.self, from: b, what: key(name))
    }

    /// Releases the lock (only if it is still ours).
    public func release() {
        guard
            !released.withLock({ r in
                defer { r = true }; return r
            })
        else { return }
        RepositoryLock.release(name, token: holder.token, repo: repo)
    }

    /// Deletes `locks/<name>.json` if the holder it names has `token` (best effort).
    public static func release(_ name: String, token: String, repo: any Repository) {
        if let b = try? repo.getBytesIfExists(key(name)),
            let current = try? SealedDocument.open(Holder.self, from: b, what: name), current.token == token
        {
            try? repo.delete([key(name)])
        }
    }

    deinit { release() }
}
