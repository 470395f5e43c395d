import CZstd
import CairnBase

/// Streaming zstd compression with content checksums (XXH64 per frame).
final class ZstdCompressor {
    private let cctx: OpaquePointer
    private let out: UnsafeMutableRawBufferPointer

    /// - Parameters:
    ///   - level: 1…19 (negative levels are fast modes).
    ///   - workers: zstd worker threads (0 = compress on the calling thread).
    init(level: Int32, workers: Int32) throws {
        guard let c = ZSTD_createCCtx() else {
            throw CairnError(.internal, "cannot allocate a zstd compression context")
        }
        cctx = c
        out = .allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 16)
        try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "set level \(level)")
        try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "enable checksums")
        if workers > 0 {
            // Builds without multithreading refuse this; compress single-threaded then.
            _ = ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, workers)
        }
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        out.deallocate()
    }

    private func check(_ rc: Int, _ what: String) throws {
        if ZSTD_isError(rc) != 0 {
            throw CairnError(.internal, "zstd: cannot \(what): \(String(cString: ZSTD_getErrorName(rc)))")
        }
    }

    /// Compresses `input`, passing compressed output to `emit` as it becomes available.
    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while inb.pos < inb.size {
            var outb = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let rc = ZSTD_compressStream2(cctx, &outb, &inb, ZSTD_e_continue)
            try check(rc, "compress")
            if outb.pos > 0 { try emit(UnsafeRawBufferPointer(rebasing: out[0..<outb.pos])) }
        }
    }

    /// Compresses a whole content into one frame in one call, into an array with `reserve` spare bytes of
    /// capacity after the frame. zstd then sees the whole input (no copy into its window buffer, no flushes of a
    /// small output buffer): 15–25 % less CPU than streaming a 16 MiB WAL segment at level 3. Only the pages
    /// the frame fills are touched, so the worst-case capacity costs address space, not memory.
    func compressWhole(_ input: UnsafeRawBufferPointer, reserve: Int) throws -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var failure: Int?
        let out = [UInt8](unsafeUninitializedCapacity: bound + reserve) { buf, count in
            let rc = ZSTD_compress2(cctx, buf.baseAddress, bound, input.baseAddress, input.count)
            if ZSTD_isError(rc) != 0 { failure = rc } else { count = rc }
        }
        if let failure { try check(failure, "compress") }
        return out
    }

    /// Ends the frame and emits the rest.
    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var inb = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while true {
            var outb = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let remaining = ZSTD_compressStream2(cctx, &outb, &inb, ZSTD_e_end)
            try check(remaining, "finish frame")
            if outb.pos > 0 { try emit(UnsafeRawBufferPointer(rebasing: out[0..<outb.pos])) }
            if remaining == 0 { break }
        }
    }
}

/// Streaming zstd decompression. Skippable frames are skipped; checksums are verified by zstd.
final class ZstdDecompressor {
    private let dctx: OpaquePointer
    private let out: UnsafeMutableRawBufferPointer
    /// True when the input so far ends exactly at a frame boundary.
    private(set) var atFrameBoundary = true

    init() throws {
        guard let d = ZSTD_createDCtx() else {
            throw CairnError(.internal, "cannot allocate a zstd decompression context")
        }
        dctx = d
        out = .allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
    }

    deinit {
        ZSTD_freeDCtx(dctx)
        out.deallocate()
    }

    /// Decompresses `input`, passing output to `emit`. Throws `data.corrupt` on a damaged stream.
    func decompress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var inb = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var outb = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let consumed = inb.pos
            let rc = ZSTD_decompressStream(dctx, &outb, &inb)
            if ZSTD_isError(rc) != 0 {
                throw ZstdFailure(why: "compressed data is damaged (zstd: \(String(cString: ZSTD_getErrorName(rc))))")
            }
            // A call that took and gave nothing (after a frame that exactly filled the output) says nothing new.
            if inb.pos > consumed || outb.pos > 0 { atFrameBoundary = rc == 0 }
            if outb.pos > 0 { try emit(UnsafeRawBufferPointer(rebasing: out[0..<outb.pos])) }
            // Done when all input is consumed and the output buffer was not filled (nothing left to flush).
            if inb.pos == inb.size && outb.pos < outb.size { break }
        }
    }
}

/// Damaged compressed data (the pipeline names the object and reports `data.corrupt`).
struct ZstdFailure: Error {
    let why: String
}
