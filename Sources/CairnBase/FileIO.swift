import Foundation

/// Small file helpers shared by the layers.
public enum FileIO {
    /// Writes the whole buffer to a file descriptor, retrying on EINTR and short writes.
    public static func writeAll(_ fd: Int32, _ b: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < b.count {
            let n = write(fd, b.baseAddress! + off, b.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw BaseError(e == ENOSPC ? .repoNoSpace : .localIO, "write failed: \(String(cString: strerror(e)))",
                                hint: e == ENOSPC ? "free space on the target file system" : nil)
            }
            off += n
        }
    }
}
