import CCRC32C
import CairnBase
import CairnPostgres
import CairnStorage
import Crypto
import Foundation
import TestSupport
import Testing

@testable import CairnCore

// Unit tests for the file-level backup's parts (Sources/CairnCore/Backup/DataDirectory.swift, FileCopier.swift,
// PGManifestText.swift, TarHeader.encode): what is left out of a data directory, that parallel lanes produce
// bundles GNU tar and Cairn's extractor read back to the same tree, and PostgreSQL's manifest rules.

private func sh(_ command: String) throws -> String { try Run.shell(command).stdout }

/// A folder shaped like a data directory, with everything a base backup must leave out.
private func makeDataDirectory() throws -> String {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-pgdata-\(UUID().uuidString)").path
    let long = String(repeating: "d", count: 70) + "/" + String(repeating: "e", count: 70)
    _ = try sh(
        """
        set -e; mkdir -p \(root) && cd \(root)
        mkdir -p base/5 global pg_wal/archive_status pg_replslot/slot1 pg_stat_tmp pg_tblspc pg_xact log \(long)
        echo 15 > PG_VERSION; echo conf > postgresql.conf; echo 123 > postmaster.pid; echo x > postmaster.opts
        head -c 16777216 /dev/urandom > pg_wal/000000010000000000000001; touch pg_wal/archive_status/000000010000000000000001.ready
        echo s > pg_replslot/slot1/state; echo t > pg_stat_tmp/x.stat
        head -c 300000 /dev/urandom > base/5/16384; head -c 8192 /dev/zero > base/5/16384_fsm
        head -c 100 /dev/zero > base/5/16390.1
        head -c 8192 /dev/zero > base/5/16390; head -c 8192 /dev/zero > base/5/16390_init; head -c 8192 /dev/zero > base/5/16390_vm
        echo i > base/5/pg_internal.init; echo t > base/5/pgsql_tmp123; : > base/5/empty
        head -c 5000 /dev/urandom > global/pg_control; echo l > log/postgresql.log
        echo deep > \(long)/\(String(repeating: "f", count: 90))
        ln -s /somewhere/else pg_tblspc/16999
        """)
    return root
}

@Suite struct FileBackupTests {
    @Test func theScanLeavesOutWhatPostgreSQLsBaseBackupLeavesOut() throws {
        let root = try makeDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let paths = Set(try DataDirectory.scan(dataDirectory: root).map(\.path))
        for kept in [
            "PG_VERSION", "postgresql.conf", "pg_wal", "pg_wal/archive_status", "pg_replslot", "pg_stat_tmp",
            "base/5/16384", "base/5/16384_fsm", "base/5/16390_init", "base/5/empty", "global/pg_control",
            "log/postgresql.log", "pg_tblspc/16999"
        ] {
            #expect(paths.contains(kept), "\(kept) is copied")
        }
        for left in [
            "postmaster.pid", "postmaster.opts", "pg_wal/000000010000000000000001",
            "pg_wal/archive_status/000000010000000000000001.ready", "pg_replslot/slot1", "pg_stat_tmp/x.stat",
            "base/5/pg_internal.init", "base/5/pgsql_tmp123",
            "base/5/16390", "base/5/16390.1", "base/5/16390_vm"
        ] {  // an unlogged relation: only its init fork
            #expect(!paths.contains(left), "\(left) is left out")
        }
        let link = try DataDirectory.scan(dataDirectory: root).first { $0.path == "pg_tblspc/16999" }
        #expect(link?.kind == .symlink(target: "/somewhere/else"))
    }

    @Test func walSummariesOfPostgreSQL17AndLaterAreAnEmptyFolder() throws {
        let root = try makeDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let without = Set(try DataDirectory.scan(dataDirectory: root).map(\.path))
        #expect(!without.contains("pg_wal/summaries"), "a 15 data directory has no summaries folder, and gets none")
        _ = try sh(
            "cd \(root) && mkdir pg_wal/summaries && head -c 100 /dev/zero > pg_wal/summaries/0000000100000000010000000001000000.summary"
        )
        let with = try DataDirectory.scan(dataDirectory: root)
        let summaries = try #require(
            with.first { $0.path == "pg_wal/summaries" }, "the folder is kept, as BASE_BACKUP keeps it")
        #expect(summaries.kind == .directory)
        #expect(!with.contains { $0.path.hasPrefix("pg_wal/summaries/") }, "its contents are left out")
    }

    @Test func parallelLanesWriteBundlesThatRestoreTheSameTree() throws {
        let root = try makeDataDirectory()
        let out = root + "-restored"
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: out) }
        let repo = MemoryRepository()
        let pipeline = Pipeline(level: 1)
        let entries = try DataDirectory.scan(dataDirectory: root)
        let copier = FileCopier(
            repo: repo, pipeline: pipeline, backupId: "B", archive: "base", bundleSize: 4 << 10,
            lanes: 3, onBytes: { _ in })
        try copier.copy(entries)
        let objects = copier.orderedObjects
        #expect(objects.count >= 4, "small bundles: one per file of 4 KiB or more")
        #expect(objects.map(\.key) == (1...objects.count).map { Layout.bundleKey("B", archive: "base", index: $0) })

        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for o in objects {
            let x = TarExtractor(root: out)
            var bytes: [UInt8] = []
            try pipeline.load(repo, key: o.key, expected: o.digest) {
                try x.feed($0); bytes += $0
            }
            try x.finish()
            // GNU tar reads every bundle too.
            let file = out + ".tar"
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            #expect(!(try sh("tar -tf \(file)")).isEmpty)
            try? FileManager.default.removeItem(atPath: file)
        }
        let listing = "find . -path ./pg_tblspc/16999 -prune -o -type f -print0 | sort -z | xargs -0 sha256sum"
        let expected = try sh(
            "cd \(root) && rm -f postmaster.pid postmaster.opts pg_wal/0* pg_wal/archive_status/* "
                + "pg_replslot/slot1/state pg_stat_tmp/x.stat base/5/pg_internal.init base/5/pgsql_tmp123 "
                + "base/5/16390 base/5/16390.1 base/5/16390_vm && \(listing)")
        #expect(try sh("cd \(out) && \(listing)") == expected)
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: out + "/pg_tblspc/16999") == "/somewhere/else")
        // Every copied file is listed once, with its CRC-32C.
        #expect(copier.copied.count == entries.filter { if case .file = $0.kind { true } else { false } }.count)
        let control = try #require(copier.copied.first { $0.path == "global/pg_control" })
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/global/pg_control")))
        #expect(
            control.crc32c == bytes.withUnsafeBytes { cairn_crc32c_update(0xFFFF_FFFF, $0.baseAddress, $0.count) }
                ^ 0xFFFF_FFFF)
    }

    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        let check =
            Array("123456789".utf8).withUnsafeBytes { cairn_crc32c_update(0xFFFF_FFFF, $0.baseAddress, $0.count) }
            ^ 0xFFFF_FFFF
        #expect(check == 0xE306_9283)
        // Split updates give the same value as one (the 8-byte and byte-wise paths agree).
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let whole = data.withUnsafeBytes { cairn_crc32c_update(0xFFFF_FFFF, $0.baseAddress, $0.count) }
        let split = data.withUnsafeBytes { b in
            cairn_crc32c_update(cairn_crc32c_update(0xFFFF_FFFF, b.baseAddress, 13), b.baseAddress! + 13, 987)
        }
        #expect(whole == split)
    }

    @Test func theManifestFollowsPostgreSQLsChecksumRule() throws {
        let files = [
            FileCopier.Copied(path: "backup_label", size: 10, mtime: 0, crc32c: 0xE306_9283),
            FileCopier.Copied(path: "base/1/\"q\"", size: 0, mtime: 1_700_000_000, crc32c: 0)
        ]
        let text = String(
            decoding: PGManifestText.build(
                files: files, timeline: 3, start: LSN(0x1_0000_0028), stop: LSN(0x1_0000_0100)),
            as: UTF8.self)
        // The CRC is printed as its little-endian bytes, as PostgreSQL prints it.
        #expect(text.contains("\"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"839206e3\""))
        #expect(text.contains("\"Path\": \"base/1/\\\"q\\\"\""))
        #expect(text.contains("\"Last-Modified\": \"2023-11-14 22:13:20 GMT\""))
        #expect(text.contains("{ \"Timeline\": 3, \"Start-LSN\": \"1/28\", \"End-LSN\": \"1/100\" }"))
        // The checksum covers everything up to the last line.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let body = lines.dropLast(2).joined(separator: "\n") + "\n"
        let sum = Hex.encode(Array(SHA256.hash(data: Array(body.utf8))))
        #expect(lines[lines.count - 2] == "\"Manifest-Checksum\": \"\(sum)\"}")
        _ = try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    @Test func theManifestOfPostgreSQL17AndLaterIsVersion2WithTheSystemIdentifier() throws {
        let files = [FileCopier.Copied(path: "PG_VERSION", size: 3, mtime: 0, crc32c: 1)]
        let v1 = String(
            decoding: PGManifestText.build(files: files, timeline: 1, start: LSN(0x28), stop: LSN(0x100)), as: UTF8.self
        )
        #expect(v1.hasPrefix("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": ["))
        #expect(!v1.contains("System-Identifier"))
        let text = String(
            decoding: PGManifestText.build(
                files: files, timeline: 1, start: LSN(0x28), stop: LSN(0x100),
                systemIdentifier: 7_714_903_482_510_200_216), as: UTF8.self)
        // As PostgreSQL 18's BASE_BACKUP writes it: the identifier as a bare number on the second line.
        #expect(
            text.hasPrefix(
                "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7714903482510200216,\n\"Files\": ["
            ))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let body = lines.dropLast(2).joined(separator: "\n") + "\n"
        #expect(
            lines[lines.count - 2]
                == "\"Manifest-Checksum\": \"\(Hex.encode(Array(SHA256.hash(data: Array(body.utf8)))))\"}")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect((json["System-Identifier"] as? NSNumber)?.uint64Value == 7_714_903_482_510_200_216)
    }
}
