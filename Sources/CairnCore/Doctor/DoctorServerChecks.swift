import CairnBase
import CairnPostgres
import Foundation

extension DoctorFacts {
    /// What the server's major version and initdb choices mean for backups: data checksums, WAL summaries.
    public struct Server: Sendable, Equatable {
        /// `server_version_num`, e.g. 180006.
        public var versionNum: Int
        /// `data_checksums` (fixed at initdb, or by `pg_checksums --enable` on a stopped cluster).
        public var dataChecksums: Bool
        /// `summarize_wal` on PostgreSQL 17 and later; nil before (the setting does not exist).
        public var summarizeWAL: Bool?

        public init(versionNum: Int, dataChecksums: Bool, summarizeWAL: Bool?) {
            self.versionNum = versionNum
            self.dataChecksums = dataChecksums
            self.summarizeWAL = summarizeWAL
        }

        public var major: Int { versionNum / 10000 }
        /// `18.6`, as PostgreSQL names its releases since 10.
        public var version: String { "\(versionNum / 10000).\(versionNum % 10000)" }

        /// Reads the facts over a connection.
        public static func read(_ c: PGConnection) throws -> Server {
            let checksums = try c.scalar("SHOW data_checksums") == "on"
            let summarize = c.serverVersion >= 170000 ? try c.scalar("SHOW summarize_wal") == "on" : nil
            return Server(versionNum: c.serverVersion, dataChecksums: checksums, summarizeWAL: summarize)
        }
    }
}

extension Doctor {
    /// The majors Cairn's test suite runs on; 16 and 17 are served by the same code paths but not tested.
    public static let testedMajors = [15, 18]

    /// Findings about the server's version, data checksums and (17+) WAL summaries.
    static func serverFindings(_ s: DoctorFacts.Server, _ add: (String, Severity, String, String?) -> Void) {
        let newest = testedMajors.max() ?? 15
        if s.major < 15 {
            add(
                "postgres_version", .critical,
                "PostgreSQL \(s.version): cairn's physical backups need PostgreSQL 15 or later (pg_backup_start/pg_backup_stop and BASE_BACKUP as 15 has them), so this cluster gets no restorable backup",
                "upgrade to PostgreSQL 15 or later (pg_upgrade); until then use another tool for this cluster")
        } else if testedMajors.contains(s.major) {
            add(
                "postgres_version", .ok,
                "PostgreSQL \(s.version): a major cairn is tested on (\(testedMajors.map(String.init).joined(separator: ", ")))",
                nil)
        } else if s.major < newest {
            add(
                "postgres_version", .info,
                "PostgreSQL \(s.version): expected to work through the same code paths as 15 and \(newest), but not covered by cairn's tests",
                "run `cairn drill` after the first backups to prove restores on this major")
        } else {
            add(
                "postgres_version", .warning,
                "PostgreSQL \(s.version) is newer than the majors cairn is tested on (up to \(newest)): backup formats or recovery may have changed",
                "check cairn's release notes for PostgreSQL \(s.major) support, and run `cairn drill` after every backup until then"
            )
        }
        if s.dataChecksums {
            add(
                "data_checksums", .ok,
                "data checksums are on: PostgreSQL detects a damaged page when it reads it (streamed backups, pg_amcheck and drills read every page)",
                nil)
        } else {
            add(
                "data_checksums", .warning,
                "data checksums are off: a page damaged on disk (storage, firmware, kernel) is not detected, so it goes into backups unnoticed and drills cannot tell it from good data",
                "stop PostgreSQL and run `pg_checksums --enable -D <data directory>` (offline, reads every file), or create new clusters with initdb --data-checksums (the default from PostgreSQL 18)"
            )
        }
        if let summarize = s.summarizeWAL {
            if summarize {
                add(
                    "summarize_wal", .ok, "summarize_wal is on: the WAL summaries incremental backups need are kept",
                    nil)
            } else {
                add(
                    "summarize_wal", .info,
                    "summarize_wal is off: PostgreSQL \(s.major) can keep WAL summaries, which block-level incremental backups need (cairn takes full backups today; its incremental backups will use them)",
                    "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf();")
            }
        }
    }
}
