import CairnBase
import CairnStorage
import Foundation
import Logging

/// The configured repositories in order, each with its name: `repositories:` in cairn.yaml (or the single
/// `repository:`, named `default`). The first is the primary: backups are taken into it and copied to the others,
/// and reads try it first.
///
/// The policy, in one place (README "Several repositories"):
/// - a WAL file is acknowledged once every repository holds it, or, when a repository has failed for longer than
///   `archive.max_backlog` of WAL waiting, once the others hold it (``WalPush``);
/// - a backup is committed in each repository by its own manifest (``CopyOperation``);
/// - reads fall back to the next repository when one is unreachable or an object fails its checks, and say so.
public struct RepositorySet: Sendable {
    /// One repository and its name.
    public struct Member: Sendable {
        public let name: String
        public let repo: any Repository

        public init(name: String, repo: any Repository) {
            self.name = name
            self.repo = repo
        }
    }

    public let members: [Member]

    static let logger = Logger(label: "cairn.repositories")

    /// The primary repository and the others, in order.
    public init(_ primary: Member, others: [Member] = []) {
        members = [primary] + others
    }

    /// One repository, named `default` (as the single `repository:` of cairn.yaml).
    public static func single(_ repo: any Repository) -> RepositorySet {
        RepositorySet(Member(name: "default", repo: repo))
    }

    /// The primary repository (the first configured).
    public var primary: Member { members[0] }

    /// True when there is more than one repository.
    public var isSeveral: Bool { members.count > 1 }

    /// The member named `name`.
    public func member(_ name: String) -> Member? { members.first { $0.name == name } }

    /// The members with `preferred` (a name) first, then the others in their order.
    public func ordered(preferring preferred: String?) -> [Member] {
        guard let preferred, let i = members.firstIndex(where: { $0.name == preferred }) else { return members }
        var m = members
        m.insert(m.remove(at: i), at: 0)
        return m
    }

    /// Runs `body` on each member in turn until one succeeds; a failure a copy elsewhere can mend (an unreachable
    /// or uninitialized repository, a missing or damaged object) is logged with the repository's name and the next
    /// one is tried. The last failure is thrown when none succeeds; any other failure at once.
    public func firstSucceeding<T>(
        _ what: String, preferring preferred: String? = nil, _ body: (Member) throws -> T
    ) throws -> T {
        let order = ordered(preferring: preferred)
        for (i, m) in order.dropLast().enumerated() {
            do {
                return try body(m)
            } catch let e where Self.isRepositoryFailure(e) {
                Self.logger.warning(
                    "\(what) from repository \(m.name) failed; trying repository \(order[i + 1].name)",
                    metadata: ["error": "\(describeError(e).message)"])
            }
        }
        return try body(order[order.count - 1])
    }

    /// True for failures that concern one repository, not the request: reading the same object from another
    /// repository may succeed.
    public static func isRepositoryFailure(_ error: Error) -> Bool {
        guard let e = error as? CairnError else { return false }
        switch e.code {
        case .repoUnreachable, .repoTLS, .repoAuth, .repoAccessDenied, .repoBucketMissing, .repoObjectMissing,
            .repoTimeout, .repoIO, .repoProtocol, .repoUninitialized, .repoCorrupt, .dataCorrupt, .keyMissing,
            .keyMismatch, .backupNotFound:
            return true
        default:
            return false
        }
    }
}
