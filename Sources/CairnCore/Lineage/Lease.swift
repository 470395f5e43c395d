import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// A running job's claim on what it still needs, so that `cairn expire` deletes none of it:
/// `leases/<kind>-<uuid>.json` (a sealed document) with an expiry.
///
/// - A **backup** claims every uncommitted backup started since the lease was taken: its bundles survive
///   however long it waits for WAL.
/// - A **restore** claims its backup and the WAL from the backup's start along the timeline it recovers on, until
///   recovery ends (`recovery_end_command` releases it) or the lease expires; `wal-fetch` renews it while
///   PostgreSQL replays.
/// - A **drill** claims everything while it runs.
///
/// A lease that names no plan yet (the job is still choosing) claims everything. The hand-over with `expire`
/// is fenced by the order of steps: a job writes its lease first and then waits while an expire holds its lock;
/// `expire` takes its lock first and then reads the leases. Either expire sees the lease, or the job sees
/// the lock and waits until expire has finished, and then reads a catalog that no longer changes under it.
public struct Lease: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case backup, restore, drill }

    public var id: String
    public var kind: Kind
    public var host: String
    public var pid: Int32
    public var created: Date
    public var expires: Date
    /// Restore: the backup being restored (nil: not chosen yet).
    public var backup: String?
    /// Restore: the timeline recovery follows.
    public var timeline: UInt32?
    /// Restore: the first WAL segment replay needs.
    public var firstSegment: String?

    enum CodingKeys: String, CodingKey {
        case id, kind, host, pid, created, expires, backup, timeline
        case firstSegment = "first_segment"
    }

    /// True when the lease claims everything (its job has not chosen what it needs yet, or is a drill).
    public var claimsEverything: Bool { kind == .drill || (kind == .restore && backup == nil) }

    /// Takes a new lease for `ttl` seconds.
    public static func take(_ kind: Kind, repo: any Repository, ttl: Double, clock: any WallClock) throws -> Lease {
        _ = try RepositoryInfo.require(from: repo)  // nothing is written where no repository is
        let now = clock.now()
        let lease = Lease(
            id: "\(kind.rawValue)-\(UUID().uuidString.lowercased())", kind: kind,
            host: ProcessInfo.processInfo.hostName, pid: getpid(), created: now,
            expires: now.addingTimeInterval(ttl))
        try lease.save(to: repo)
        return lease
    }

    /// Writes (or rewrites) the lease.
    public func save(to repo: any Repository) throws {
        try repo.put(Layout.leaseKey(id), try SealedDocument.seal(self), options: .overwrite)
    }

    /// Narrows a restore's lease to what its plan needs.
    public mutating func narrow(to plan: RecoveryPlan, repo: any Repository) throws {
        backup = plan.backupId
        timeline = plan.timeline
        firstSegment = plan.firstSegment
        try save(to: repo)
    }

    /// Pushes the expiry out to `ttl` seconds from now (`wal-fetch` during a long replay).
    public static func renew(_ id: String, repo: any Repository, ttl: Double, clock: any WallClock) throws {
        guard var lease = try read(id, from: repo) else { return }
        lease.expires = clock.now().addingTimeInterval(ttl)
        try lease.save(to: repo)
    }

    /// Deletes a lease (best effort: an expired lease no longer counts anyway).
    public static func release(_ id: String, repo: any Repository) {
        try? repo.delete([Layout.leaseKey(id)])
    }

    public static func read(_ id: String, from repo: any Repository) throws -> Lease? {
        guard let b = try repo.getBytesIfExists(Layout.leaseKey(id)) else { return nil }
        return try SealedDocument.open(Lease.self, from: b, what: Layout.leaseKey(id))
    }

    /// Every lease in the repository. An unreadable one counts as a lease that claims everything for a day from
    /// its object's time, so damage never lets expire delete what a job needs.
    public static func all(in repo: any Repository) throws -> [Lease] {
        try repo.list(prefix: Layout.leasesPrefix).map { o in
            if let b = try repo.getBytesIfExists(o.key),
                let l = try? SealedDocument.open(Lease.self, from: b, what: o.key)
            {
                return l
            }
            let at = o.lastModified ?? Date()
            return Lease(
                id: String(o.key.dropFirst(Layout.leasesPrefix.count).dropLast(5)), kind: .drill, host: "?", pid: 0,
                created: at, expires: at.addingTimeInterval(86400))
        }
    }

    /// Waits while an `expire` holds its lock (after this job wrote its lease), so the catalog the job reads next
    /// is not being deleted from. Gives up after `timeout` seconds with `repo.locked`.
    public static func awaitNoExpire(repo: any Repository, clock: any WallClock, timeout: Double = 300) throws {
        let deadline = clock.now().addingTimeInterval(timeout)
        while let holder = try RepositoryLock.current("expire", repo: repo), holder.expires > clock.now(),
            !(holder.host == ProcessInfo.processInfo.hostName && kill(holder.pid, 0) != 0 && errno == ESRCH)
        {
            guard clock.now() < deadline else {
                throw CairnError(
                    .repoLocked,
                    "an expire has been running on \(holder.host) (pid \(holder.pid)) since \(Timestamp.format(holder.acquired)); not starting while it may delete what this job needs",
                    hint:
                        "wait for it to finish and run this again; if that process is gone, delete locks/expire.json from the repository"
                )
            }
            try Interruption.check()
            clock.sleep(seconds: 1)
        }
    }
}

extension Lease {
    /// Takes a lease of `kind` for `ttl` seconds, runs `body` with it, releases it (also on an interrupt). With
    /// `fence`, waits first while an expire runs, so `body` reads a catalog nothing is deleted from.
    public static func holding<T>(
        _ kind: Kind, repo: any Repository, ttl: Double, fence: Bool,
        _ body: (Lease) async throws -> T
    ) async throws -> T {
        let lease = try await Blocking.run { try Lease.take(kind, repo: repo, ttl: ttl, clock: SystemClock()) }
        let interrupt = Interruption.onInterrupt("") { Lease.release(lease.id, repo: repo) }
        defer {
            Interruption.remove(interrupt)
            Lease.release(lease.id, repo: repo)
        }
        if fence { try await Blocking.run { try Lease.awaitNoExpire(repo: repo, clock: SystemClock()) } }
        return try await body(lease)
    }
}
