import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

/// Client-side encryption end to end on PostgreSQL 15: every feature works on an encrypted repository, nothing
/// readable reaches the store, `cairn key rotate` changes the master key without rewriting data, and the wrong
/// key, no key or a changed object are refused with their documented codes.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct EncryptedRepositoryTests {
    static func newKey() -> String { Data(MasterKey.generate()).base64EncodedString() }

    /// Every object but cairn.json, the keyring, locks and probes starts with the envelope's magic.
    static func expectEverythingEncrypted(_ raw: any Repository) throws -> Int {
        var n = 0
        for o in try raw.list(prefix: "") where !EncryptedRepository.isPlain(o.key) {
            var head = [UInt8]()
            _ = try? raw.get(o.key, range: ByteRange(start: 0, end: 8)) { head += $0 }
            #expect(head == Array("CAIRNENC".utf8), "\(o.key) is stored in clear")
            n += 1
        }
        return n
    }

    @Test func backupRestoreVerifyDrillRotateAndExpireOnAnEncryptedS3Repository() throws {
        let c = try DrillTests.makeCluster(
            "enc-s3", repo: .s3, extra: "retention:\n  recovery_window: 1s\n  min_full_backups: 1",
            masterKey: Self.newKey())
        defer { c.destroy() }
        let raw = try ExpireTests.repository(c)
        #expect(try raw.getBytes(Keyring.key).starts(with: Array("{\"body\":".utf8)))
        let info = try raw.getBytes(RepositoryInfo.key)
        #expect(String(decoding: info, as: UTF8.self).contains("\"encryption\":\"aes-256-gcm\""))
        let encrypted = try Self.expectEverythingEncrypted(raw)
        #expect(encrypted >= 5, "bundles, manifests and WAL are stored")

        let verify = try c.cairn(["verify", "--full", "--json"])
        #expect(verify.status == 0, "\(verify.stderr)")
        let drill = try c.cairn(["drill", "--json"])
        #expect(drill.status == 0, "\(drill.stdout)\n\(drill.stderr)")
        #expect(drill.stdout.contains("\"verdict\" : \"pass\""))

        // Rotate to a key made by `cairn key generate`; the old key stops working, the new one reads everything.
        let newKey = c.dir + "/master-2.key"
        let gen = try c.cairn(["key", "generate", "--output", newKey])
        #expect(gen.status == 0, "\(gen.stderr)")
        #expect((try FileManager.default.attributesOfItem(atPath: newKey)[.posixPermissions] as? Int) == 0o600)
        let bundle = try #require(try raw.list(prefix: "backups/").first { $0.key.hasSuffix(".tar.zst") })
        let bundleBefore = try raw.getBytes(bundle.key)
        let rotate = try c.cairn(["key", "rotate", "--new-key-file", newKey, "--json"])
        #expect(rotate.status == 0, "\(rotate.stderr)")
        #expect(try raw.getBytes(bundle.key) == bundleBefore, "rotation rewrites no data object")
        let stale = try c.cairn(["list"])
        #expect(stale.status == 77, "\(stale.stderr)")
        #expect(stale.stderr.contains("[key.mismatch]") && stale.stderr.contains("HINT:"))
        try Run.shell("sed -i 's#\(c.dir)/master.key#\(newKey)#' \(c.config!)")
        let status = try c.cairn(["key", "status"])
        #expect(status.status == 0 && status.stdout.contains("opens the keyring"), "\(status.stdout)\(status.stderr)")

        // Writes after the rotation (WAL, a second backup) and reads of data from before it.
        try c.psql("INSERT INTO orders (item) SELECT 'after rotation ' || g FROM generate_series(1, 300) g")
        try c.switchAndWaitForArchive()
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO orders (item) SELECT 'last ' || g FROM generate_series(1, 7) g")
        try c.switchAndWaitForArchive()
        let expected = try c.psql("SELECT count(*) FROM orders")
        let ids = try c.cairn(["list", "--json"]).stdout
        #expect(try c.cairn(["verify", "--full"]).status == 0)

        // Expire (window 1 s, one full backup kept) deletes the first backup; the second restores to the latest WAL.
        let expire = try c.cairn(["expire", "--json"])
        #expect(expire.status == 0, "\(expire.stderr)")
        #expect(try c.cairn(["list", "--json"]).stdout != ids, "the older backup was expired")
        let restored = try c.restoreAndStart()
        defer { restored.destroy() }
        #expect(try restored.psql("SELECT count(*) FROM orders") == expected)
        #expect(try Self.expectEverythingEncrypted(raw) > encrypted)
    }

    @Test func noKeyAWrongKeyAndChangedObjectsAreRefused() throws {
        let c = try ScratchCluster(name: "enc-local") {
            try TestRepository.config(.local, dir: $0, conninfo: $1, masterKey: Self.newKey())
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.switchAndWaitForArchive()
        try c.switchAndWaitForArchive()
        let plain = try String(contentsOfFile: c.config!, encoding: .utf8)

        // Without the key: every command that reads says so.
        let noKey = c.dir + "/no-key.yaml"
        try plain.replacingOccurrences(of: "  encryption:\n    key_file: \(c.dir)/master.key", with: "").write(
            toFile: noKey, atomically: true, encoding: .utf8)
        let missing = try Run.cairnAsPostgres(["--config", noKey, "list"])
        #expect(missing.status == 78 && missing.stderr.contains("[key.missing]"), "\(missing.stderr)")
        // With another key.
        let other = c.dir + "/other.key"
        try (Self.newKey() + "\n").write(toFile: other, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(other) \(noKey) && chmod 600 \(other)")
        let wrongConfig = c.dir + "/wrong-key.yaml"
        try plain.replacingOccurrences(of: "\(c.dir)/master.key", with: other).write(
            toFile: wrongConfig, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(wrongConfig)")
        let wrong = try Run.cairnAsPostgres(["--config", wrongConfig, "verify"])
        #expect(wrong.status == 77 && wrong.stderr.contains("[key.mismatch]"), "\(wrong.stderr)")
        #expect(
            !wrong.stderr.contains(
                try String(contentsOfFile: other, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))

        // `config validate` reads the key (and names it by id); a missing key file is a configuration error.
        let valid = try c.cairn(["config", "validate"])
        #expect(valid.status == 0 && valid.stdout.contains("(master key "), "\(valid.stdout)\(valid.stderr)")
        let noFile = c.dir + "/no-file.yaml"
        try plain.replacingOccurrences(of: "\(c.dir)/master.key", with: "\(c.dir)/absent.key").write(
            toFile: noFile, atomically: true, encoding: .utf8)
        try Run.shell("chown postgres \(noFile)")
        let absent = try Run.cairnAsPostgres(["--config", noFile, "config", "validate"])
        #expect(
            absent.status == 78 && absent.stderr.contains("[config.invalid]")
                && absent.stderr.contains("cairn key generate"), "\(absent.stderr)")

        // A flipped bit in one segment and two segments swapped: verify names each, exit 65.
        let walDir = try FileManager.default.subpathsOfDirectory(atPath: c.dir + "/repo/wal")
            .filter { $0.hasSuffix(".zst") }.sorted().map { c.dir + "/repo/wal/" + $0 }
        #expect(walDir.count >= 3)
        let flipped = walDir[0]
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: flipped)))
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: flipped))
        try Run.shell(
            "cp \(walDir[1]) /tmp/cairn-swap-$$ && cp \(walDir[2]) \(walDir[1]) && cp /tmp/cairn-swap-$$ \(walDir[2]) && rm /tmp/cairn-swap-$$"
        )
        let v = try c.cairn(["verify", "--full"])
        #expect(v.status == 65, "\(v.stdout)\(v.stderr)")
        for f in walDir.prefix(3) {
            let name = (f as NSString).lastPathComponent.replacingOccurrences(of: ".zst", with: "")
            #expect((v.stdout + v.stderr).contains(name), "\(name) is named")
        }
    }
}
