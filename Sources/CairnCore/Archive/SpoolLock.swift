import Foundation

/// The lock a background helper (the WAL prefetcher, the push-ahead worker) holds on its spool folder for its
/// whole life (`<spool>/.lock`, `flock`), so that only one runs per spool and others can tell whether one runs.
public enum SpoolLock {
    /// Takes the lock; nil when another process holds it (or the folder cannot be used). Close the descriptor
    /// to release it.
    public static func acquire(_ spool: String) -> Int32? {
        try? FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        let fd = open(spool + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// True when a process holds the spool's lock.
    public static func held(_ spool: String) -> Bool {
        let fd = open(spool + "/.lock", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }
}
