import CairnBase
import Foundation
import Synchronization

/// A part buffer handed from the producer to an upload thread.
final class PartBuffer: @unchecked Sendable {
    let storage: UnsafeMutableRawBufferPointer
    var count = 0
    init(capacity: Int) { storage = .allocate(byteCount: capacity, alignment: 64) }
    deinit { storage.deallocate() }
    var capacity: Int { storage.count }
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }
}

/// Streams an object into S3: a single PUT when it fits in one part, otherwise a multipart upload with parts
/// sent by `concurrency` threads (or `PutOptions.uploadThreads`). At most one part per thread is in flight, so at
/// most that many + 1 part buffers exist at once (the one being filled); with `uploadThreads` 0 the writing thread
/// sends each part itself and one buffer is all there is.
///
/// Part sizes start at `partSize` and double every 1000 parts, so a stream of unknown length can reach
/// several TiB within S3's 10,000-part limit.
final class S3MultipartWriter: ObjectWriter {
    let repo: S3Repository
    let key: String
    let options: PutOptions
    private var current: PartBuffer?
    private var uploadId: String?
    private var pool: WorkerPool?
    private let ledger = Ledger()
    private var nextPart = 1
    private var size: Int64 = 0
    private var state: State = .open

    private enum State { case open, finished, aborted }

    init(repo: S3Repository, key: String, options: PutOptions) {
        self.repo = repo
        self.key = key
        self.options = options
    }

    deinit { if state == .open { abort() } }

    /// Results the upload threads hand back: part ETags and buffers free for reuse.
    final class Ledger: Sendable {
        let etags = Mutex<[(Int, String)]>([])
        let free = Mutex<[PartBuffer]>([])
    }

    /// The size of part `n` (1-based).
    func partSize(for n: Int) -> Int {
        repo.settings.partSize << min(10, (n - 1) / 1000)
    }

    private func takeBuffer(capacity: Int) -> PartBuffer {
        if let b = ledger.free.withLock({ buffers -> PartBuffer? in
            while let b = buffers.popLast() { if b.capacity == capacity { return b } }
            return nil
        }) {
            b.count = 0
            return b
        }
        return PartBuffer(capacity: capacity)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard state == .open else { throw CairnError(.internal, "write to \(key) after finish or abort") }
        var offset = 0
        while offset < bytes.count {
            if current == nil { current = takeBuffer(capacity: partSize(for: nextPart)) }
            let buf = current!
            let n = min(buf.capacity - buf.count, bytes.count - offset)
            (buf.storage.baseAddress! + buf.count).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            buf.count += n
            offset += n
            size += Int64(n)
            if buf.count == buf.capacity && (uploadId != nil || buf.count >= repo.settings.singlePutLimit) {
                try flushPart()
            }
        }
    }

    /// Hands the current buffer to the upload threads, starting the multipart upload if needed.
    private func flushPart() throws {
        guard let buf = current else { return }
        current = nil
        let inline = options.uploadThreads == 0
        if uploadId == nil {
            if options.createOnly, try repo.head(key) != nil { throw CairnError.exists(key, in: repo.location) }
            uploadId = try repo.createMultipart(key, createOnly: options.createOnly)
            if !inline {
                // No queue: a part waits in the writer until an upload thread is free.
                pool = WorkerPool(
                    threads: min(repo.settings.concurrency, options.uploadThreads ?? Int.max), maxQueued: 0,
                    name: "cairn-upload")
            }
        }
        let number = nextPart
        nextPart += 1
        if number > 10_000 { throw CairnError(.repoIO, "object \(key) needs more than 10000 parts") }
        let id = uploadId!
        let repo = self.repo, key = self.key
        let ledger = self.ledger
        if inline {
            // One buffer: the part is sent from the writing thread, which then refills the same buffer.
            let etag = try repo.uploadPart(key, uploadId: id, number: number, buf.bytes)
            ledger.etags.withLock { $0.append((number, etag)) }
            ledger.free.withLock { $0.append(buf) }
            return
        }
        let accepted = pool!.submit {
            let etag = try repo.uploadPart(key, uploadId: id, number: number, buf.bytes)
            ledger.etags.withLock { $0.append((number, etag)) }
            ledger.free.withLock { $0.append(buf) }
        }
        if !accepted { try pool!.wait() }
    }

    func finish() throws -> ObjectInfo {
        guard state == .open else { throw CairnError(.internal, "finish of \(key) after finish or abort") }
        do {
            if uploadId == nil {
                let body = current ?? PartBuffer(capacity: 0)
                current = nil
                _ = try repo.putObject(key, body.bytes, options: options)
            } else {
                if let c = current, c.count > 0 { try flushPart() }
                try pool?.wait()
                pool = nil
                try repo.completeMultipart(
                    key, uploadId: uploadId!, parts: ledger.etags.withLock { $0 },
                    createOnly: options.createOnly)
                try repo.ensureRetention(key)
            }
            state = .finished
            ledger.free.withLock { $0.removeAll() }
            return ObjectInfo(key: key, size: size, lastModified: Date())
        } catch {
            abort()
            throw error
        }
    }

    func abort() {
        guard state == .open else { return }
        state = .aborted
        if let pool {
            pool.cancel()
            try? pool.wait()
        }
        pool = nil
        if let id = uploadId { repo.abortMultipart(key, uploadId: id) }
        current = nil
        ledger.free.withLock { $0.removeAll() }
    }
}
