/// Every failure Cairn reports has one stable code from this table; the exit code follows from the code.
///
/// The codes are part of Cairn's interface: runbooks, monitoring and scripts match on them, so a code is never
/// renamed or reused. `runbooks/error-codes.md` documents the same table for operators.
public enum ErrorCode: String, Sendable, CaseIterable, Codable {
    // Usage and configuration
    case usage = "usage"
    case configMissing = "config.missing"
    case configInvalid = "config.invalid"
    case policyInvalid = "policy.invalid"

    // Repository (storage)
    case repoUnreachable = "repo.unreachable"
    case repoTLS = "repo.tls"
    case repoAuth = "repo.auth"
    case repoAccessDenied = "repo.access-denied"
    case repoBucketMissing = "repo.bucket-missing"
    case repoObjectMissing = "repo.object-missing"
    case repoObjectExists = "repo.object-exists"
    case repoTimeout = "repo.timeout"
    case repoNoSpace = "repo.no-space"
    case repoIO = "repo.io"
    case repoProtocol = "repo.protocol"
    case repoUninitialized = "repo.uninitialized"
    case repoForeign = "repo.foreign"
    case repoCorrupt = "repo.corrupt"
    case repoLocked = "repo.locked"
    /// The store does not honour create-only writes (`If-None-Match: *`), so it cannot keep WAL safe.
    case repoCreateOnlyUnsupported = "repo.create-only-unsupported"
    /// Cairn cannot tell which timeline history is the production cluster's.
    case repoAmbiguousHistory = "repo.ambiguous-history"
    /// A delete was refused because the object is under S3 Object Lock (its retention date has not passed).
    case repoObjectLocked = "repo.object-locked"
    /// With several repositories: a WAL file or backup is stored in some but not yet in all of them.
    case repoBehind = "repo.behind"

    // Data integrity
    case dataCorrupt = "data.corrupt"

    // Encryption keys
    case keyMissing = "key.missing"
    case keyMismatch = "key.mismatch"

    // PostgreSQL
    case pgUnreachable = "pg.unreachable"
    case pgAuth = "pg.auth"
    case pgQuery = "pg.query"
    case pgTool = "pg.tool"
    case pgVersion = "pg.version"
    case pgConfig = "pg.config"

    // WAL archive
    case walNotFound = "wal.not-found"
    case walConflict = "wal.conflict"
    case walInvalidName = "wal.invalid-name"
    case walMissing = "wal.missing"

    // Backups and restore
    case backupNotFound = "backup.not-found"
    case backupFailed = "backup.failed"
    /// The write of a backup's commit marker may or may not have landed; its data was kept.
    case backupCommitUnknown = "backup.commit-unknown"
    case restoreTarget = "restore.target-unreachable"
    case restoreDirNotEmpty = "restore.dir-not-empty"
    case restoreTargetNotEmpty = "restore.database-not-empty"
    case restoreFailed = "restore.failed"
    /// `find` or `restore --table` was given a table that neither the cluster nor any backup knows.
    case tableUnknown = "table.unknown"
    /// `restore --table` would create a table that already exists in the live database.
    case tableExists = "table.exists"

    // Local environment
    case localIO = "local.io"
    case interrupted = "interrupted"
    case `internal` = "internal"

    /// The process exit code for this error code (sysexits-style, documented in `runbooks/error-codes.md`).
    ///
    /// `wal-fetch` is the one command that deviates: PostgreSQL's `restore_command` contract needs exit 1 for
    /// "not in the archive" and an exit code above 125 for "stop recovery", see `walFetchExitCode`.
    public var exitCode: Int32 {
        switch self {
        case .walNotFound: return 1
        case .usage: return 64
        case .dataCorrupt, .repoCorrupt: return 65
        case .repoObjectMissing, .backupNotFound, .repoUninitialized, .walMissing, .repoBucketMissing, .tableUnknown:
            return 66
        case .repoUnreachable, .repoTLS, .pgUnreachable: return 69
        case .internal: return 70
        case .localIO, .repoIO, .repoProtocol, .pgQuery, .pgTool, .backupFailed, .restoreFailed: return 74
        case .repoTimeout, .backupCommitUnknown, .repoBehind: return 75
        case .repoObjectExists, .walConflict, .repoForeign, .repoLocked, .repoAmbiguousHistory, .restoreDirNotEmpty,
            .restoreTargetNotEmpty, .repoNoSpace, .tableExists, .repoObjectLocked:
            return 73
        case .repoAuth, .repoAccessDenied, .pgAuth, .keyMismatch: return 77
        case .configMissing, .configInvalid, .policyInvalid, .pgVersion, .pgConfig, .walInvalidName, .restoreTarget,
            .keyMissing,
            .repoCreateOnlyUnsupported:
            return 78
        case .interrupted: return 130
        }
    }

    /// Exit code used by `wal-fetch` for real errors (anything but "not in the archive"): above 125, so that
    /// PostgreSQL stops recovery instead of taking the failure for the end of the archive and promoting early.
    public static let walFetchFatalExitCode: Int32 = 126
}
