import Foundation

/// Everything the S3 driver needs to know. Built by the configuration loader from `cairn.yaml` and the
/// environment.
public struct S3Settings: Sendable {
    /// How the bucket is addressed.
    public enum URIStyle: String, Sendable, CaseIterable {
        /// `https://bucket.endpoint/key` (AWS's default).
        case host
        /// `https://endpoint/bucket/key` (MinIO, Ceph, emulators).
        case path
    }

    /// Endpoint URL with scheme, host and optional port, e.g. `https://s3.eu-west-1.amazonaws.com`.
    public var endpoint: URL
    public var bucket: String
    /// Key prefix inside the bucket (no leading or trailing `/`), may be empty.
    public var prefix: String
    public var region: String
    public var uriStyle: URIStyle
    /// PEM file with the CA(s) that sign the endpoint's certificate; nil means the system store.
    public var caFile: String?
    /// Verify the endpoint's TLS certificate and host name (on unless explicitly disabled).
    public var verifyTLS: Bool
    /// `x-amz-storage-class` for data objects, e.g. `STANDARD_IA`.
    public var storageClass: String?
    /// `x-amz-server-side-encryption`: `AES256` or `aws:kms`.
    public var serverSideEncryption: String?
    /// KMS key id for `aws:kms`.
    public var kmsKeyId: String?
    /// S3 Object Lock on the objects written (nil: none); see ``S3ObjectLock``.
    public var objectLock: S3ObjectLock?
    public var credentials: AWSCredentials

    /// Bytes per multipart part (at least 5 MiB); parts grow for very large objects.
    public var partSize: Int
    /// Objects up to this size go up in one PUT.
    public var singlePutLimit: Int
    /// Parts uploaded at once per writer.
    public var concurrency: Int
    /// Seconds to establish a connection.
    public var connectTimeout: Double
    /// Seconds a transfer may make no progress before the attempt is abandoned (a hung server).
    public var stallTimeout: Double
    /// Seconds a whole request may take, retries included.
    public var requestDeadline: Double
    /// Retries after the first attempt for retryable failures.
    public var maxRetries: Int

    public init(
        endpoint: URL, bucket: String, prefix: String = "", region: String = "us-east-1",
        uriStyle: URIStyle = .host, caFile: String? = nil, verifyTLS: Bool = true,
        storageClass: String? = nil, serverSideEncryption: String? = nil, kmsKeyId: String? = nil,
        objectLock: S3ObjectLock? = nil, credentials: AWSCredentials, partSize: Int = 8 << 20,
        singlePutLimit: Int? = nil,
        concurrency: Int = 4, connectTimeout: Double = 10, stallTimeout: Double = 30,
        requestDeadline: Double = 300, maxRetries: Int = 6
    ) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix.split(separator: "/").joined(separator: "/")
        self.region = region
        self.uriStyle = uriStyle
        self.caFile = caFile
        self.verifyTLS = verifyTLS
        self.storageClass = storageClass
        self.serverSideEncryption = serverSideEncryption
        self.kmsKeyId = kmsKeyId
        self.objectLock = objectLock
        self.credentials = credentials
        self.partSize = max(partSize, 5 << 20)
        self.singlePutLimit = singlePutLimit ?? self.partSize
        self.concurrency = max(1, concurrency)
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.requestDeadline = requestDeadline
        self.maxRetries = max(0, maxRetries)
    }
}

/// S3 Object Lock for the objects the driver writes: each PUT (or multipart upload) carries
/// `x-amz-object-lock-mode` and `x-amz-object-lock-retain-until-date` (signed, with the body's `Content-MD5`,
/// which Object Lock requires), so until that date no one, Cairn included, can delete or replace that version.
/// The bucket must have Object Lock (and so versioning) enabled.
///
/// With a lock the driver's `delete` removes every version of a key (a plain DELETE on a versioned bucket would
/// only hide the object behind a delete marker), and a version still locked is kept and reported
/// (`repo.object-locked`) instead.
public struct S3ObjectLock: Sendable {
    /// The retention mode: governance (users with `s3:BypassGovernanceRetention` can lift it) or compliance
    /// (no one can, not even the account's root user).
    public enum Mode: String, Sendable, CaseIterable {
        case governance = "GOVERNANCE"
        case compliance = "COMPLIANCE"
    }

    public var mode: Mode
    /// Seconds from a write to its object's retain-until date.
    public var period: Double
    /// Keys written without a lock: objects Cairn deletes in its normal course (job locks, leases, probes, pins).
    public var exempt: @Sendable (String) -> Bool

    public init(mode: Mode, period: Double, exempt: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.mode = mode
        self.period = period
        self.exempt = exempt
    }
}
