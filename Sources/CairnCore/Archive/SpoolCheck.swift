import CCRC32C
import CairnBase
import CairnPostgres
import Foundation

/// What the prefetcher records beside each segment it spools (`<segment>.check`), so that `wal-fetch` can tell
/// the segment it downloaded and verified from what a crash or a stray write left under its name: the CRC-32C of
/// the whole file, and the cluster facts of the repository's `cairn.json` the long page header must match.
struct SpoolCheck: Codable, Equatable {
    var crc32c: UInt32
    var systemIdentifier: String
    var pgMajor: Int
    var segmentSize: Int64

    enum CodingKeys: String, CodingKey {
        case crc32c
        case systemIdentifier = "system_identifier"
        case pgMajor = "pg_major"
        case segmentSize = "segment_size"
    }

    static let suffix = ".check"

    /// The record's path for a spooled segment.
    static func path(of segmentPath: String) -> String { segmentPath + suffix }

    /// The CRC-32C (Castagnoli) of `bytes`, continuing `crc` (start with 0).
    static func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        cairn_crc32c_update(crc ^ 0xFFFF_FFFF, bytes.baseAddress, bytes.count) ^ 0xFFFF_FFFF
    }

    /// Writes the record for `segmentPath` durably (temporary file, fsync, rename).
    func write(for segmentPath: String) throws {
        let final = Self.path(of: segmentPath)
        let tmp = final + ".cairn-tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CairnError(.localIO, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Array(try JSONEncoder().encode(self)).withUnsafeBytes { try FileIO.writeAll(fd, $0) }
        guard fsync(fd) == 0, rename(tmp, final) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw CairnError(.localIO, "cannot write \(final): \(reason)")
        }
    }

    /// Why the file at `path` is not the segment `name` that the record at `checkPath` describes; nil when it is.
    /// Reads the file once, in 1 MiB chunks.
    static func problem(path: String, name: String, checkPath: String) -> String? {
        guard let data = FileManager.default.contents(atPath: checkPath),
            let check = try? JSONDecoder().decode(SpoolCheck.self, from: data)
        else { return "it has no readable check record" }
        guard let segment = WALSegment(name: name, segmentSize: check.segmentSize) else {
            return "its check record is invalid"
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "it cannot be opened: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "it cannot be read: \(String(cString: strerror(errno)))" }
        guard Int64(st.st_size) == check.segmentSize else {
            return "it has \(st.st_size) bytes, not \(check.segmentSize)"
        }
        return check.problem(reading: fd, segment: segment)
    }

    /// Why the content read from `fd` (of the recorded size) is not `segment` as recorded: the long page header
    /// of its first chunk, then the CRC-32C of all of it.
    func problem(reading fd: Int32, segment: WALSegment) -> String? {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        var crc: UInt32 = 0
        var offset: Int64 = 0
        while offset < segmentSize {
            let n = pread(fd, chunk.baseAddress, Int(min(Int64(chunk.count), segmentSize - offset)), off_t(offset))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return "it cannot be read at byte \(offset)" }
            let bytes = UnsafeRawBufferPointer(rebasing: chunk[0..<n])
            if offset == 0, let problem = headerProblem(bytes, segment: segment) { return problem }
            crc = Self.crc32c(bytes, continuing: crc)
            offset += Int64(n)
        }
        guard crc == crc32c else { return String(format: "its CRC-32C is %08x, not the recorded %08x", crc, crc32c) }
        return nil
    }

    /// Why the long page header at the start of `bytes` does not belong to `segment` of this repository: magic,
    /// flags, timeline, page address and system identifier.
    func headerProblem(_ bytes: UnsafeRawBufferPointer, segment: WALSegment) -> String? {
        guard bytes.count >= 40 else { return "it is too short for a WAL page header" }
        let magic = bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self)
        if let expected = WALHeader.pageMagic[pgMajor], magic != expected {
            return String(format: "its page magic is 0x%04X, not PostgreSQL %d's 0x%04X", magic, pgMajor, expected)
        }
        guard bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self) & 0x0002 != 0 else {
            return "it does not start with a long page header"
        }
        let tli = bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        guard tli >= 1, tli <= segment.timeline else { return "its page header names timeline \(tli)" }
        let pageAddress = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        guard pageAddress == segment.startLSN.value else {
            return "its first page is at \(LSN(pageAddress)), not \(segment.startLSN)"
        }
        let sysid = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        guard String(sysid) == systemIdentifier else {
            return "it belongs to cluster \(sysid), not \(systemIdentifier)"
        }
        return nil
    }
}
