import CairnBase
import Foundation

/// Metadata of one stored object.
public struct ObjectInfo: Sendable, Equatable, Codable {
    /// The key relative to the repository root, e.g. `wal/00000001/000000010000000000000003.zst`.
    public var key: String
    /// Size in bytes as stored.
    public var size: Int64
    /// Last modification time as the store reports it (seconds resolution is enough).
    public var lastModified: Date?

    public init(key: String, size: Int64, lastModified: Date? = nil) {
        self.key = key
        self.size = size
        self.lastModified = lastModified
    }
}

/// Options for a write.
public struct PutOptions: Sendable, Equatable {
    /// The write must fail with ``CairnError`` code `repo.object-exists` when the key already exists, and must
    /// never replace an existing object, even under a race with another writer.
    public var createOnly: Bool
    /// At most this many parallel part uploads for this writer (nil: the driver's setting; 0: each part is sent
    /// by the writing thread, from one buffer). Callers that run several writers at once lower it, so their
    /// buffers together stay within the memory budget.
    public var uploadThreads: Int?

    public init(createOnly: Bool = false, uploadThreads: Int? = nil) {
        self.createOnly = createOnly
        self.uploadThreads = uploadThreads
    }

    /// Replace any existing object.
    public static let overwrite = PutOptions(createOnly: false)
    /// Fail instead of replacing.
    public static let createOnly = PutOptions(createOnly: true)
}

/// What a driver guarantees beyond the basic contract.
public struct RepositoryCapabilities: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `createOnly` writes are atomic by construction: of two simultaneous create-only writes of one key, one
    /// fails (the local file system's hard link, the in-memory driver's lock). Not claimed by the S3 driver:
    /// whether `If-None-Match: *` is atomic under concurrency depends on the server.
    public static let atomicCreateOnly = RepositoryCapabilities(rawValue: 1 << 0)
    /// A written object is durable (fsync / acknowledged by the store) when `put` or `finish` returns.
    public static let durableWrites = RepositoryCapabilities(rawValue: 1 << 1)
    /// Writers upload parts in parallel (multipart).
    public static let parallelWrites = RepositoryCapabilities(rawValue: 1 << 2)
    /// The repository outlives the process (not the in-memory driver).
    public static let persistent = RepositoryCapabilities(rawValue: 1 << 3)
    /// A successful write proves the store holds exactly the bytes sent (e.g. S3 checked Content-MD5 and returned
    /// the MD5 as ETag), so reading the object back adds nothing.
    public static let verifiedWrites = RepositoryCapabilities(rawValue: 1 << 4)
    /// Objects are encrypted on write and decrypted on read by a layer holding the master key: stored bytes that
    /// are ciphertext are expected (without it, they mean that a key is missing).
    public static let decrypts = RepositoryCapabilities(rawValue: 1 << 5)
}

/// A byte range `[start, end)` of an object; `end == nil` means to the end of the object.
public struct ByteRange: Sendable, Equatable {
    public var start: Int64
    public var end: Int64?
    public init(start: Int64, end: Int64? = nil) {
        self.start = start
        self.end = end
    }
}

/// The storage behind a Cairn repository: a flat key space of immutable-once-written objects.
///
/// Contract every driver must honour (checked by the conformance suite in the tests):
/// - Keys are relative `/`-separated paths of printable characters; a driver must reject an empty key, a key
///   that starts or ends with `/`, an empty segment, or a `.` or `..` segment, with code `repo.protocol`.
/// - `put` and `ObjectWriter.finish` must make the whole object visible at once: a reader must never see a
///   partial object, and a failed or aborted write must leave no object under the key.
/// - With ``PutOptions/createOnly`` the write must fail with `repo.object-exists` when the key exists (a streaming
///   writer may notice during `write` or at the latest in `finish`) and must not modify the existing object.
/// - `get` of a missing key must throw code `repo.object-missing`; `head` of a missing key must return nil.
/// - `list` must return every object whose key starts with the prefix, sorted by key, and never in-progress
///   writes or temporary files.
/// - `delete` must succeed for keys that do not exist.
/// - Every call is blocking and must return or throw within the driver's configured deadline: call drivers from
///   dedicated threads (``Blocking``), not from Swift concurrency's cooperative pool.
/// - Errors must never carry a secret (credentials, signatures).
/// - Drivers must be safe to call from several threads at once.
public protocol Repository: Sendable {
    /// A human-readable location without secrets, e.g. `s3://bucket/prefix` or `/var/lib/cairn/repo`.
    var location: String { get }
    /// Everything that tells this store apart from any other, without secrets: what a record about the store
    /// (e.g. a push-ahead acknowledgement) must match before it is trusted. Two repositories with the same
    /// identity are the same store; the same ``location`` is not enough (a bucket of the same name on another
    /// endpoint). The default is ``location``; drivers add what their location leaves out.
    var identity: String { get }
    /// What this driver guarantees.
    var capabilities: RepositoryCapabilities { get }

    /// Stores a whole object from memory.
    @discardableResult
    func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo

    /// Starts a streaming write. Nothing is visible under `key` until ``ObjectWriter/finish()`` succeeds.
    func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter

    /// Streams an object (or a range of it) to `sink`, in order. A driver may resume a dropped transfer, but must
    /// never deliver a byte twice. Returns the object's metadata.
    @discardableResult
    func get(_ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> ObjectInfo

    /// Metadata of an object, or nil when it does not exist.
    func head(_ key: String) throws -> ObjectInfo?

    /// Every object whose key starts with `prefix` (a plain string prefix), sorted by key.
    func list(prefix: String) throws -> [ObjectInfo]

    /// Deletes objects; keys that do not exist are not an error. Drivers may batch.
    func delete(_ keys: [String]) throws
}

/// A streaming write of one object.
///
/// Call `write` any number of times, then exactly one of `finish` (commit) or `abort` (discard). An object
/// whose writer was neither finished nor aborted (a crash) must not become visible.
public protocol ObjectWriter: AnyObject {
    /// Appends bytes. May block while earlier parts are uploaded (bounded memory).
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Makes the object visible atomically and returns its metadata.
    func finish() throws -> ObjectInfo
    /// Discards everything written; safe to call more than once and after a failed `finish`.
    func abort()
}

extension Repository {
    /// The location, for drivers whose location names the store completely.
    public var identity: String { location }

    /// Reads a whole object into memory (for small objects: manifests, `cairn.json`).
    public func getBytes(_ key: String) throws -> [UInt8] {
        var out = [UInt8]()
        try get(key, range: nil) { out.append(contentsOf: $0) }
        return out
    }

    /// Reads a whole object, or nil when it does not exist.
    public func getBytesIfExists(_ key: String) throws -> [UInt8]? {
        do { return try getBytes(key) } catch let e as CairnError where e.code == .repoObjectMissing { return nil }
    }

    /// Stores a whole object through ``makeWriter(_:options:)`` (for drivers whose `put` is a streamed write).
    public func putThroughWriter(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        let w = try makeWriter(key, options: options)
        do {
            try bytes.withUnsafeBytes { try w.write($0) }
            return try w.finish()
        } catch {
            w.abort()
            throw error
        }
    }

    /// Stores bytes, replacing any existing object.
    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8]) throws -> ObjectInfo {
        try put(key, bytes, options: .overwrite)
    }
}

/// Validates a repository key against the contract; drivers call this first.
public func validateKey(_ key: String) throws {
    func bad(_ why: String) -> CairnError {
        CairnError(.repoProtocol, "invalid object key \"\(key)\": \(why)")
    }
    if key.isEmpty { throw bad("empty") }
    if key.hasPrefix("/") || key.hasSuffix("/") { throw bad("starts or ends with /") }
    for seg in key.split(separator: "/", omittingEmptySubsequences: false) {
        if seg.isEmpty { throw bad("empty path segment") }
        if seg == "." || seg == ".." { throw bad("relative path segment") }
    }
    if key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { throw bad("control character") }
}
