import CairnBase
import Foundation
import Synchronization

/// An in-memory repository for unit tests. It honours the full contract, including atomic create-only writes.
public final class MemoryRepository: Repository {
    private let objects = Mutex<[String: (bytes: [UInt8], modified: Date)]>([:])
    private let clock: any WallClock

    public init(clock: any WallClock = SystemClock()) { self.clock = clock }

    public var location: String { "memory://" }
    public var capabilities: RepositoryCapabilities { [.atomicCreateOnly, .durableWrites, .verifiedWrites] }

    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        try validateKey(key)
        let now = clock.now()
        try objects.withLock { objs in
            if options.createOnly, objs[key] != nil { throw CairnError.exists(key, in: location) }
            objs[key] = (bytes, now)
        }
        return ObjectInfo(key: key, size: Int64(bytes.count), lastModified: now)
    }

    public func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter {
        try validateKey(key)
        return Writer(repo: self, key: key, options: options)
    }

    @discardableResult
    public func get(
        _ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> ObjectInfo {
        try validateKey(key)
        guard let obj = objects.withLock({ $0[key] }) else { throw CairnError.missing(key, in: location) }
        let count = Int64(obj.bytes.count)
        let start = min(range?.start ?? 0, count)
        let end = min(range?.end ?? count, count)
        if end > start {
            try obj.bytes[Int(start)..<Int(end)].withUnsafeBytes { try sink($0) }
        }
        return ObjectInfo(key: key, size: count, lastModified: obj.modified)
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        try validateKey(key)
        return objects.withLock { objs in
            objs[key].map { ObjectInfo(key: key, size: Int64($0.bytes.count), lastModified: $0.modified) }
        }
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        objects.withLock { objs in
            objs.filter { $0.key.hasPrefix(prefix) }
                .map { ObjectInfo(key: $0.key, size: Int64($0.value.bytes.count), lastModified: $0.value.modified) }
                .sorted { $0.key < $1.key }
        }
    }

    public func delete(_ keys: [String]) throws {
        for k in keys { try validateKey(k) }
        objects.withLock { objs in for k in keys { objs[k] = nil } }
    }

    /// Test hook: replaces an object's bytes behind the contract's back (to simulate damage).
    public func tamper(_ key: String, _ body: (inout [UInt8]) -> Void) {
        objects.withLock { objs in
            guard var o = objs[key] else { return }
            body(&o.bytes)
            objs[key] = o
        }
    }

    private final class Writer: ObjectWriter {
        let repo: MemoryRepository
        let key: String
        let options: PutOptions
        var buffer = [UInt8]()
        var done = false

        init(repo: MemoryRepository, key: String, options: PutOptions) {
            self.repo = repo
            self.key = key
            self.options = options
        }

        func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard !done else { throw CairnError(.internal, "write after finish or abort of \(key)") }
            buffer.append(contentsOf: bytes)
        }

        func finish() throws -> ObjectInfo {
            guard !done else { throw CairnError(.internal, "finish after finish or abort of \(key)") }
            done = true
            return try repo.put(key, buffer, options: options)
        }

        func abort() {
            done = true
            buffer = []
        }
    }
}
