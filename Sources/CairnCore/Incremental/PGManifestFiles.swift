import CairnBase
import Foundation

/// The file list of a PostgreSQL-format backup manifest (`backup_manifest`): what exists at that backup, with the
/// size and, where known, the CRC-32C of each file. An incremental backup compares against its parent's list and
/// a restore of a chain takes the newest one as the complete set of files.
public struct PGManifestFiles: Sendable {
    public struct File: Sendable, Equatable {
        public var size: Int64
        /// CRC-32C of the whole file; nil where the manifest has none (a file stored as changed blocks).
        public var crc32c: UInt32?
    }

    public var files: [String: File]

    public init(files: [String: File]) { self.files = files }

    private struct Document: Decodable {
        struct Entry: Decodable {
            var path: String?
            var encodedPath: String?
            var size: Int64
            var algorithm: String?
            var checksum: String?
            enum CodingKeys: String, CodingKey {
                case path = "Path", encodedPath = "Encoded-Path", size = "Size"
                case algorithm = "Checksum-Algorithm", checksum = "Checksum"
            }
        }
        var files: [Entry]
        enum CodingKeys: String, CodingKey { case files = "Files" }
    }

    /// Parses a manifest's bytes; throws `dataCorrupt` on anything that is not one.
    public static func parse(_ bytes: [UInt8]) throws -> PGManifestFiles {
        let doc: Document
        do {
            doc = try JSONDecoder().decode(Document.self, from: Data(bytes))
        } catch {
            throw CairnError(.dataCorrupt, "a PostgreSQL backup manifest that cannot be read: \(error)")
        }
        var files: [String: File] = [:]
        for e in doc.files {
            guard
                let path = e.path
                    ?? e.encodedPath.flatMap({ Hex.decode($0) }).map({ String(decoding: $0, as: UTF8.self) })
            else {
                throw CairnError(.dataCorrupt, "a PostgreSQL backup manifest entry without a path")
            }
            var crc: UInt32?
            if e.algorithm == "CRC32C", let hex = e.checksum, let b = Hex.decode(hex), b.count == 4 {
                crc = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
            }
            files[path] = File(size: e.size, crc32c: crc)
        }
        return PGManifestFiles(files: files)
    }
}
