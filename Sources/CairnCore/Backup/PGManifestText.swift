import CairnBase
import CairnPostgres
import Crypto
import Foundation

/// Writes a backup manifest in PostgreSQL's own format, so `pg_verifybackup` checks a restored file-level backup
/// exactly as it checks a streamed one: every file's size and CRC-32C, and the manifest's own SHA-256 over
/// everything before its last line. A file an incremental backup stored as changed blocks has no checksum (as
/// `pg_basebackup --manifest-checksums=none` writes them), since only a restore puts its whole content together. Version 1 as `BASE_BACKUP` sends it up to PostgreSQL 16; with a
/// `systemIdentifier` (PostgreSQL 17 and later) version 2, which adds `System-Identifier` and which
/// `pg_verifybackup` 17+ checks against the restored `global/pg_control`.
enum PGManifestText {
    static func build(
        files: [FileCopier.Copied], timeline: UInt32, start: LSN, stop: LSN, systemIdentifier: UInt64? = nil
    ) -> [UInt8] {
        var text =
            systemIdentifier.map {
                "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": \($0),\n\"Files\": ["
            }
            ?? "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": ["
        for (i, f) in files.enumerated() {
            text += i == 0 ? "\n" : ",\n"
            text += "{ \"Path\": \(json(f.path)), \"Size\": \(f.size), \"Last-Modified\": \"\(gmt(f.mtime))\""
            if let sum = f.crc32c {
                let crc = withUnsafeBytes(of: sum.littleEndian) { Hex.encode(Array($0)) }
                text += ", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"\(crc)\""
            }
            text += " }"
        }
        text +=
            "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": \(timeline), \"Start-LSN\": \"\(start)\", \"End-LSN\": \"\(stop)\" }\n],\n"
        let checksum = Hex.encode(Array(SHA256.hash(data: Array(text.utf8))))
        text += "\"Manifest-Checksum\": \"\(checksum)\"}\n"
        return Array(text.utf8)
    }

    /// `YYYY-MM-DD HH:MM:SS GMT`, as PostgreSQL prints Last-Modified.
    static func gmt(_ t: Int) -> String {
        var time = time_t(t)
        var tm = tm()
        gmtime_r(&time, &tm)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d GMT", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
    }

    /// A JSON string literal (slashes left as they are, as PostgreSQL writes paths).
    static func json(_ s: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(s)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }
}
