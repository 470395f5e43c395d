import CairnBase
import CairnCore
import CairnStorage
import Foundation

/// The effective settings: `cairn.yaml`, then the environment, with defaults for everything optional.
public struct Configuration: Sendable {
    /// The cluster Cairn backs up.
    public struct Cluster: Sendable {
        /// libpq connection string (keywords or URI); empty means libpq's defaults (PGHOST, PGPORT, …).
        public var connection: String
        /// The data directory (needed for restore defaults and `doctor`; read from the server otherwise).
        public var dataDirectory: String?
        /// Folder with pg_dump, pg_restore, pg_ctl… of the cluster's major version. Nil (not set): found by the
        /// major of the server (or of the backup a drill restores), see `ToolVersions.locate`.
        public var binDirectory: String?
        /// How physical backups read the cluster: `auto` reads the data directory itself when it is on this
        /// host (`files`), and otherwise has PostgreSQL stream it (`stream`).
        public var backupMethod: BackupMethod
    }

    /// Where the backups go.
    public enum RepositoryKind: Sendable {
        case local(path: String)
        case s3(S3Repo)
    }

    /// S3 settings as configured (credentials resolved separately).
    public struct S3Repo: Sendable {
        public var bucket: String
        public var prefix: String
        public var endpoint: URL
        public var region: String
        public var uriStyle: S3Settings.URIStyle
        public var caFile: String?
        public var verifyTLS: Bool
        public var storageClass: String?
        public var serverSideEncryption: String?
        public var kmsKeyId: String?
        public var credentialsFile: String?
        public var profile: String
        /// `repository.object_lock` (nil: objects are written without a lock).
        public var objectLock: ObjectLockSetting? = nil
    }

    /// S3 Object Lock as configured: every object Cairn keeps is written with `mode` and a retain-until date of
    /// the recovery window plus `margin` from its write (``ObjectLockPolicy``).
    public struct ObjectLockSetting: Sendable, Equatable {
        public var mode: S3ObjectLock.Mode
        /// Seconds added to the recovery window (at least a day unless `testShortPeriods`).
        public var margin: Double
        /// `test_short_periods: true`: margins under a day are accepted (tests that watch a lock pass).
        public var testShortPeriods: Bool
    }

    /// Where the master key of client-side encryption comes from (`repository.encryption`).
    public enum EncryptionKey: Sendable, Equatable {
        /// A file holding the key (base64 or hex), mode 0600.
        case file(String)
        /// An environment variable holding the key.
        case environment(String)
    }

    /// One repository of `repositories:` (or the single `repository:`, named `default`).
    public struct NamedRepository: Sendable {
        /// Its name in messages and `--repo` (letters, digits, `-`, `_`).
        public var name: String
        public var kind: RepositoryKind
        /// Client-side encryption of this repository (nil: plain).
        public var encryption: EncryptionKey?
    }

    /// WAL archiving (`archive:`).
    public struct Archive: Sendable {
        /// Asynchronous archiving: a backlog of `.ready` files starts a worker that pushes them in parallel.
        public var async: Bool
        /// With several repositories: the most WAL (bytes of `.ready` files) that may wait while one repository
        /// is down before segments stored in the others are acknowledged without it (`archive.max_backlog`).
        public var maxBacklog: Int64 = 1 << 30
    }

    public struct Compression: Sendable {
        /// zstd level, 1…19.
        public var level: Int
        /// zstd worker threads per stream (0 = none).
        public var threads: Int
    }

    public struct Limits: Sendable {
        /// Parallel transfers (upload parts, restore files, WAL prefetch).
        public var parallelism: Int
        /// Multipart part size.
        public var partSize: Int64
        public var connectTimeout: Double
        /// A transfer with no progress for this long is abandoned and retried.
        public var ioTimeout: Double
        /// The most a single repository request may take, retries included.
        public var requestTimeout: Double
        public var retries: Int
        /// Uncompressed bytes per backup bundle (the unit of parallel restore).
        public var bundleSize: Int64
        /// WAL segments `wal-fetch` prefetches ahead of replay.
        public var prefetch: Int
    }

    public var cluster: Cluster
    /// The repositories, in the order they are written to and read from (the first is the primary).
    public var repositories: [NamedRepository]
    /// The primary repository (the first of `repositories`).
    public var repository: RepositoryKind { repositories[0].kind }
    /// Client-side encryption of the primary repository (nil: plain).
    public var encryption: EncryptionKey? { repositories[0].encryption }
    public var compression: Compression
    public var archive: Archive
    public var limits: Limits
    /// The retention policy (`retention:` in cairn.yaml: a policy file's path, relative to cairn.yaml, or the
    /// keys inline); defaults when absent.
    public var retention: RetentionPolicy
    /// Where the retention policy came from, for `config show`.
    public var retentionSource: String
    /// The schedule policy file (`schedule:` in cairn.yaml, relative to it), for `daemon` and `schedule`.
    public var schedulePath: String?
    /// Where the daemon serves `/metrics` and `/healthz` (`metrics.listen`, default 127.0.0.1:9187).
    public var metricsListen: String
    /// The drill policy (`drills:` in cairn.yaml: a file path relative to cairn.yaml, or inline); defaults when absent.
    public var drills: DrillPolicy
    /// The file it came from (nil when built in code).
    public var sourcePath: String?
    /// Which environment variables changed a setting, for `config show`.
    public var environmentOverrides: [String]
}
