import CairnBase
import CairnPostgres
import Foundation

/// What one repository lacks of the primary's: committed backups and WAL files (segments and timeline
/// histories) the primary holds and it does not. `cairn copy --to NAME` fills it; `doctor` reports it.
public struct RepositoryLag: Codable, Sendable, Equatable {
    /// Ids of the primary's committed backups this repository has no committed copy of, oldest first.
    public var missingBackups: [String]
    /// Names of the primary's WAL files this repository lacks, in timeline and segment order.
    public var missingWAL: [String]

    enum CodingKeys: String, CodingKey {
        case missingBackups = "missing_backups"
        case missingWAL = "missing_wal"
    }

    public init(missingBackups: [String] = [], missingWAL: [String] = []) {
        self.missingBackups = missingBackups
        self.missingWAL = missingWAL
    }

    /// True when the repository lacks anything the primary has.
    public var isBehind: Bool { !missingBackups.isEmpty || !missingWAL.isEmpty }

    /// Compares a repository's catalog with the primary's (pure).
    public static func of(_ member: Catalog, behind primary: Catalog) -> RepositoryLag {
        let have = Set(member.backups.map(\.id))
        var wal: [String] = []
        for tli in primary.wal.timelines {
            if primary.wal.histories[tli] != nil, member.wal.histories[tli] == nil {
                wal.append(WALFileName.history(timeline: tli).description)
            }
            let theirs = member.wal.segments[tli] ?? [:]
            for (n, e) in (primary.wal.segments[tli] ?? [:]).sorted(by: { $0.key < $1.key }) where theirs[n] == nil {
                wal.append(e.file.description)
            }
        }
        return RepositoryLag(missingBackups: primary.backups.map(\.id).filter { !have.contains($0) }, missingWAL: wal)
    }

    /// One line for a report: how many of each, with the first and last names.
    public var summary: String {
        var parts: [String] = []
        if !missingBackups.isEmpty {
            parts.append("\(missingBackups.count) committed backup(s) (\(Self.range(missingBackups)))")
        }
        if !missingWAL.isEmpty { parts.append("\(missingWAL.count) WAL file(s) (\(Self.range(missingWAL)))") }
        return parts.joined(separator: " and ")
    }

    static func range(_ names: [String]) -> String {
        names.count == 1 ? names[0] : "\(names[0])…\(names[names.count - 1])"
    }
}
