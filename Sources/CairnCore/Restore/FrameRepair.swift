import CairnBase
import CairnStorage
import Crypto
import Foundation

extension RestoreOperation {
    /// A large file of a delta restore whose frames (``FileFrames``) differ from the file on disk, and its repair:
    /// only the differing frames are fetched, by range (adjacent ones in one request). Each frame's stored bytes
    /// must have their recorded SHA-256 before they are decoded, and the decoded content its recorded XXH3-128; it
    /// is then compared block by block with the file, only the differing blocks written. The file is cut to its
    /// size afterwards (``ChainFiles/finish(resized:root:)``).
    struct FrameRepair: Sendable {
        /// The file's manifest path.
        let key: String
        /// Where it is restored.
        let path: String
        let size: Int64
        let frames: FileFrames
        /// The frames to fetch, in order.
        let differing: [Int]

        /// The frames of `path` whose content on disk is not the recorded one (those past its end included),
        /// hashed on all cores; nil when `path` is not a regular file.
        static func differing(_ path: String, size: Int64, frames: FileFrames, tally: DeltaTally) throws -> [Int]? {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
            let onDisk = Int64(st.st_size)
            let verdicts = Verdicts(count: frames.count)
            let lanes = min(frames.count, ProcessInfo.processInfo.activeProcessorCount)
            DispatchQueue.concurrentPerform(iterations: lanes) { lane in
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(frames.frameSize), alignment: 64)
                defer { buffer.deallocate() }
                for k in stride(from: lane, to: frames.count, by: lanes) where !verdicts.failed {
                    let r = frames.contentRange(k, fileSize: size)
                    guard r.upperBound <= onDisk else {
                        verdicts.set(k, differs: true)
                        continue
                    }
                    do {
                        try Interruption.check()
                        let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<r.count])
                        let got = try FileIO.readFully(fd, into: slice, at: r.lowerBound, path: path)
                        tally.compared(bytes: Int64(got))
                        verdicts.set(
                            k, differs: got < r.count || !frames.contentMatches(k, UnsafeRawBufferPointer(slice)))
                    } catch {
                        verdicts.fail(error)
                    }
                }
            }
            return try verdicts.differing()
        }

        /// Fetches the differing frames from `bundle` in `repo` and puts them in place.
        func apply(bundle: String, repo: any Repository, tally: DeltaTally) throws {
            let fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw CairnError(.localIO, "cannot open \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            let placer = FramePlacer(fd: fd, path: path, frameSize: Int(frames.frameSize))
            for run in runs {
                try fetch(run, bundle: bundle, repo: repo) { k, content in
                    try placer.place(content, at: frames.contentRange(k, fileSize: size).lowerBound)
                }
            }
            tally.fetched(frames: differing.count)
            if placer.written > 0 { tally.rewrote(path, bytes: placer.written) }
        }

        /// The differing frames as runs of adjacent ones.
        var runs: [ClosedRange<Int>] {
            var out: [ClosedRange<Int>] = []
            for k in differing {
                if let last = out.last, last.upperBound + 1 == k {
                    out[out.count - 1] = last.lowerBound...k
                } else {
                    out.append(k...k)
                }
            }
            return out
        }

        /// Fetches the frames `run` with one ranged read and passes each frame's content, proven, to `body`.
        private func fetch(
            _ run: ClosedRange<Int>, bundle: String, repo: any Repository,
            body: (Int, UnsafeRawBufferPointer) throws -> Void
        ) throws {
            let range = frames.storedRange(run)
            let content = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(frames.frameSize), alignment: 64)
            defer { content.deallocate() }
            var stored: [UInt8] = []
            var (k, position) = (run.lowerBound, range.lowerBound)
            _ = try repo.get(bundle, range: ByteRange(start: range.lowerBound, end: range.upperBound)) { chunk in
                var at = 0
                while at < chunk.count {
                    guard k <= run.upperBound else {
                        throw Pipeline.damaged(bundle, in: repo, "a ranged read returned too much")
                    }
                    let n = min(Int(frames.offsets[k + 1] - position), chunk.count - at)
                    stored += chunk[at..<(at + n)]
                    (at, position) = (at + n, position + Int64(n))
                    guard position == frames.offsets[k + 1] else { continue }
                    let length = try decode(k, stored, into: content, bundle: bundle, repo: repo)
                    try body(k, UnsafeRawBufferPointer(rebasing: content[0..<length]))
                    k += 1
                    stored.removeAll(keepingCapacity: true)
                }
            }
            guard k == run.upperBound + 1 else {
                throw Pipeline.damaged(bundle, in: repo, "frames \(run) of \(key) end early (in frame \(k))")
            }
        }

        /// Proves frame `k`'s stored bytes, decodes them into `content` and proves the content; returns its length.
        private func decode(
            _ k: Int, _ stored: [UInt8], into content: UnsafeMutableRawBufferPointer, bundle: String,
            repo: any Repository
        ) throws -> Int {
            guard stored.withUnsafeBytes({ frames.storedMatches(k, $0) }) else {
                if !repo.capabilities.contains(.decrypts) {
                    var head: [UInt8] = []
                    _ = try? repo.get(bundle, range: ByteRange(start: 0, end: 8)) { head += $0 }
                    if head.withUnsafeBytes(ObjectCipher.looksEncrypted) { throw Pipeline.keyMissing(bundle, in: repo) }
                }
                throw Pipeline.damaged(
                    bundle, in: repo, "frame \(k) of \(key) does not match the SHA-256 recorded in the manifest")
            }
            let length = Int(frames.contentRange(k, fileSize: size).count)
            let decoder = try ZstdDecompressor()
            var filled = 0
            do {
                try stored.withUnsafeBytes { s in
                    try decoder.decompress(s) { out in
                        guard filled + out.count <= length else {
                            throw ZstdFailure(why: "a frame decodes to too much")
                        }
                        (content.baseAddress! + filled).copyMemory(from: out.baseAddress!, byteCount: out.count)
                        filled += out.count
                    }
                }
            } catch let e as ZstdFailure {
                throw Pipeline.damaged(bundle, in: repo, e.why)
            }
            guard decoder.atFrameBoundary, filled == length,
                frames.contentMatches(k, UnsafeRawBufferPointer(rebasing: content[0..<length]))
            else {
                throw Pipeline.damaged(
                    bundle, in: repo, "frame \(k) of \(key) does not decode to the content recorded in the manifest")
            }
            return length
        }
    }

    /// Each frame's verdict, set from several threads, and the first error.
    private final class Verdicts: @unchecked Sendable {
        private let lock = NSLock()
        private var differs: [Bool]
        private var error: (any Error)?

        init(count: Int) { differs = [Bool](repeating: false, count: count) }

        var failed: Bool { lock.withLock { error != nil } }
        func set(_ k: Int, differs d: Bool) { lock.withLock { differs[k] = d } }
        func fail(_ e: any Error) { lock.withLock { error = error ?? e } }

        /// The frames that differ, in order; throws the first error.
        func differing() throws -> [Int] {
            try lock.withLock {
                if let error { throw error }
                return differs.indices.filter { differs[$0] }
            }
        }
    }

    /// Writes a frame's content into a file where it differs, 8 KiB block by block (adjacent blocks in one write).
    private final class FramePlacer {
        let fd: Int32
        let path: String
        private let onDisk: UnsafeMutableRawBufferPointer
        /// Bytes written.
        private(set) var written: Int64 = 0

        init(fd: Int32, path: String, frameSize: Int) {
            self.fd = fd
            self.path = path
            onDisk = .allocate(byteCount: frameSize, alignment: 64)
        }

        deinit { onDisk.deallocate() }

        func place(_ content: UnsafeRawBufferPointer, at offset: Int64) throws {
            let got = try FileIO.readFully(
                fd, into: UnsafeMutableRawBufferPointer(rebasing: onDisk[0..<content.count]), at: offset, path: path)
            let bs = RelationBlocks.blockSize
            var (runStart, start): (Int?, Int) = (nil, 0)
            while start < content.count {
                let end = min(start + bs, content.count)
                if end <= got && memcmp(content.baseAddress! + start, onDisk.baseAddress! + start, end - start) == 0 {
                    if let s = runStart { try write(content, s..<start, at: offset) }
                    runStart = nil
                } else {
                    runStart = runStart ?? start
                }
                start = end
            }
            if let s = runStart { try write(content, s..<content.count, at: offset) }
        }

        private func write(_ content: UnsafeRawBufferPointer, _ range: Range<Int>, at offset: Int64) throws {
            try FileIO.writeFully(
                fd, UnsafeRawBufferPointer(rebasing: content[range]), at: offset + Int64(range.lowerBound), path: path)
            written += Int64(range.count)
        }
    }
}
