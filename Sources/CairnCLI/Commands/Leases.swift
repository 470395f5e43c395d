import CairnBase
import CairnCore
import CairnStorage
import Foundation

/// Running a job under a ``Lease``, so that `cairn expire` deletes nothing the job needs.
enum Leases {
    /// Takes a lease of `kind` for `ttl` seconds, runs `body` with it, releases it (also on an interrupt). With
    /// `fence`, waits first while an expire runs, so `body` reads a catalog nothing is deleted from.
    static func holding<T>(_ kind: Lease.Kind, repo: any Repository, ttl: Double, fence: Bool,
                           _ body: (Lease) async throws -> T) async throws -> T {
        let lease = try await Blocking.run { try Lease.take(kind, repo: repo, ttl: ttl, clock: SystemClock()) }
        let interrupt = Interrupts.add("") { Lease.release(lease.id, repo: repo) }
        defer {
            Interrupts.remove(interrupt)
            Lease.release(lease.id, repo: repo)
        }
        if fence { try await Blocking.run { try Lease.awaitNoExpire(repo: repo, clock: SystemClock()) } }
        return try await body(lease)
    }
}
