import CairnBase
import Foundation
import TestSupport
import Testing

/// `cairn restore --database NAME` with a recovery target: the whole database as it was at that point, as a new
/// database of the live cluster (or a dump), on PostgreSQL 15 and 18 with the repository on the S3 emulator; the
/// live database and every other database keep what was written after the target.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct DatabaseRestoreTests {
    /// Every table of `database` with a digest of its rows, and whether its sequence is past every id (a sequence
    /// recovered from WAL may be up to 32 values ahead of the last one handed out, as PostgreSQL logs it ahead).
    static func state(_ c: ScratchCluster, _ database: String) throws -> String {
        try c.psql(
            """
            SELECT (SELECT count(*) || ':' || md5(string_agg(id || '/' || v, ',' ORDER BY id)) FROM items) || '|'
                || (SELECT count(*) || ':' || coalesce(md5(string_agg(n::text, ',' ORDER BY n)), '') FROM events) || '|'
                || (SELECT last_value >= (SELECT max(id) FROM items) FROM items_id_seq)
            """, database: database)
    }

    @Test(arguments: PGMajor.tested)
    func aWholeDatabaseComesBackAsItWasAtTheTarget(major: PGMajor) throws {
        let c = try ScratchCluster(name: "dbrestore-\(major)", major: major) {
            try Run.shell("mkdir -p \($0)/scratch && chown postgres:postgres \($0)/scratch")
            return try TestRepository.config(.s3, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE DATABASE shop")
        try c.psql(
            """
            CREATE TABLE items (id bigserial PRIMARY KEY, v text NOT NULL);
            CREATE TABLE events (n int);
            INSERT INTO items (v) SELECT 'item-' || g FROM generate_series(1, 2000) g;
            INSERT INTO events SELECT generate_series(1, 500);
            """, database: "shop")
        #expect(try c.cairn(["backup"]).status == 0)
        try c.psql("INSERT INTO items (v) SELECT 'after-backup-' || g FROM generate_series(1, 300) g", database: "shop")
        let expected = try Self.state(c, "shop")
        let target = try c.psql("SELECT pg_current_wal_lsn()")
        // After the target: a mistake in shop, and writes elsewhere that must stay.
        try c.psql("DELETE FROM items WHERE id % 2 = 0; INSERT INTO events VALUES (999)", database: "shop")
        try c.psql("CREATE TABLE other (id int); INSERT INTO other VALUES (1)")
        let liveAfter = try Self.state(c, "shop")
        try c.switchAndWaitForArchive()
        let scratch = ["--scratch-dir", c.dir + "/scratch"]

        let r = try c.cairn(["restore", "--database", "shop", "--target-lsn", target, "--json"] + scratch)
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let name = try #require(doc["restored_database"] as? String, "\(r.stdout)")
        #expect(name.hasPrefix("shop_restored_"))
        #expect(
            try Self.state(c, name) == expected,
            "the new database is shop as it was at \(target): \(expected) \(r.stdout)")
        #expect(try Self.state(c, "shop") == liveAfter, "the live shop is untouched")
        #expect(try c.psql("SELECT count(*) FROM other") == "1")
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dir + "/scratch").isEmpty)

        // --into an existing database is refused before anything runs; --output writes a loadable dump.
        let taken = try c.cairn(["restore", "--database", "shop", "--target-lsn", target, "--into", name] + scratch)
        #expect(
            taken.status == ErrorCode.tableExists.exitCode && taken.stderr.contains("HINT"),
            "\(taken.status) \(taken.stderr)")
        let dump = c.dir + "/shop.dump"
        let out = try c.cairn(
            ["restore", "--database", "shop", "--target-lsn", target, "--output", dump, "--into", "shop_copy"] + scratch
        )
        #expect(out.status == 0 && out.stdout.contains("createdb shop_copy"), "\(out.stdout)\(out.stderr)")
        try c.psql("CREATE DATABASE shop_copy")
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pg_restore -h \(c.socketDir) -p \(c.port) -U postgres -d shop_copy \(dump)"
        )
        #expect(try Self.state(c, "shop_copy") == expected)
        // Without a target --database stays the logical restore's option.
        let noTarget = try c.cairn(["restore", "--database", "shop"])
        #expect(noTarget.status == ErrorCode.usage.exitCode, "\(noTarget.stderr)")
    }
}
