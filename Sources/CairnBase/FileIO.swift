import Foundation

/// Small file helpers shared by the layers.
public enum FileIO {
    /// Reads a file holding a secret (`what` names it in the warning, e.g. "credentials file"). Returns nil when it
    /// does not exist or cannot be read, and a warning (with the `chmod` to run) when other users may read it.
    public static func readSecret(_ path: String, what: String) -> (data: Data, warning: String?)? {
        var st = stat()
        guard stat(path, &st) == 0, let data = FileManager.default.contents(atPath: path) else { return nil }
        let loose = st.st_mode & 0o077 != 0
        return (
            data,
            loose
                ? "\(what) \(path) is readable by other users (mode \(String(st.st_mode & 0o777, radix: 8))); run: chmod 600 \(path)"
                : nil
        )
    }

    /// Reads a whole file into one buffer (one allocation, one copy; nil with `errno` set on failure).
    public static func readAll(_ path: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        return readAll(path, into: &bytes) ? bytes : nil
    }

    /// Reads a whole file into `buffer`, reusing its memory when it already has the file's size (a worker that
    /// reads one WAL segment after another then touches no new pages). False with `errno` set on failure.
    public static func readAll(_ path: String, into buffer: inout [UInt8]) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        let size = Int(st.st_size)
        if buffer.count != size { buffer = [UInt8](unsafeUninitializedCapacity: size) { $1 = size } }
        var done = 0
        let failed = buffer.withUnsafeMutableBytes { buf -> Bool in
            while done < size {
                let n = read(fd, buf.baseAddress! + done, size - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return n < 0 }
                done += n
            }
            return false
        }
        if !failed && done < size { errno = EIO }  // the file shrank while it was read
        return !failed && done == size
    }

    /// Reads into `buffer` from `offset` until it is full or the file ends, retrying on EINTR and short reads;
    /// returns the bytes read (fewer than the buffer holds only at the end of the file). `path` names the file in
    /// the error.
    public static func readFully(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String
    ) throws -> Int {
        var got = 0
        while got < buffer.count {
            let n = pread(fd, buffer.baseAddress! + got, buffer.count - got, off_t(offset + Int64(got)))
            if n < 0 {
                if errno == EINTR { continue }
                throw CairnError(.localIO, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            got += n
        }
        return got
    }

    /// Writes the whole buffer at `offset`, retrying on EINTR and short writes. `path` names the file in the error.
    public static func writeFully(_ fd: Int32, _ b: UnsafeRawBufferPointer, at offset: Int64, path: String) throws {
        var off = 0
        while off < b.count {
            let n = pwrite(fd, b.baseAddress! + off, b.count - off, off_t(offset + Int64(off)))
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw CairnError(
                    e == ENOSPC || e == EDQUOT ? .repoNoSpace : .localIO,
                    "cannot write \(path): \(String(cString: strerror(e)))",
                    hint: e == ENOSPC ? "free space on the restore target's file system" : nil)
            }
            off += n
        }
    }

    /// Writes the whole buffer to a file descriptor, retrying on EINTR and short writes.
    public static func writeAll(_ fd: Int32, _ b: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < b.count {
            let n = write(fd, b.baseAddress! + off, b.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw CairnError(
                    e == ENOSPC ? .repoNoSpace : .localIO, "write failed: \(String(cString: strerror(e)))",
                    hint: e == ENOSPC ? "free space on the target file system" : nil)
            }
            off += n
        }
    }
}
