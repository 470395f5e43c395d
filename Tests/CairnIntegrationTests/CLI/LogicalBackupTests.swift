import CairnBase
import CairnCore
import CairnStorage
import Foundation
import TestSupport
import Testing

/// Logical backups (`pg_dump` per database, globals) in the same catalog, and logical restores.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct LogicalBackupTests {
    /// A database that exercises what pg_dump must carry: schemas, sequences, large objects, contrib extensions,
    /// and a non-default role owning objects.
    static func makeApp(_ c: ScratchCluster, name: String = "app") throws {
        try c.psql("CREATE ROLE app_owner LOGIN PASSWORD 'app-owner-pw'")
        try c.psql("CREATE DATABASE \(name) OWNER app_owner")
        for sql in [
            "CREATE EXTENSION hstore", "CREATE EXTENSION pg_trgm", "CREATE EXTENSION citext",
            "CREATE SCHEMA sales AUTHORIZATION app_owner", "CREATE SCHEMA audit",
            "SET ROLE app_owner",
            "CREATE TABLE sales.customer (id bigserial PRIMARY KEY, email citext UNIQUE, attrs hstore)",
            "CREATE SEQUENCE sales.invoice_no START 1000 INCREMENT 7",
            "CREATE TABLE sales.invoice (no bigint DEFAULT nextval('sales.invoice_no'), customer bigint REFERENCES sales.customer, amount numeric(12,2), doc oid)",
            "CREATE INDEX invoice_trgm ON sales.customer USING gin ((email::text) gin_trgm_ops)",
            "INSERT INTO sales.customer (email, attrs) SELECT 'User' || g || '@Example.com', hstore('tier', (g % 3)::text) FROM generate_series(1, 3000) g",
            "INSERT INTO sales.invoice (customer, amount) SELECT 1 + g % 3000, g * 1.25 FROM generate_series(1, 5000) g",
            "SELECT setval('sales.invoice_no', 424242)",
            "UPDATE sales.invoice SET doc = lo_from_bytea(0, convert_to('invoice ' || no, 'UTF8')) WHERE no % 1000 = 0",
            "CREATE VIEW sales.big_spenders AS SELECT customer, sum(amount) FROM sales.invoice GROUP BY customer HAVING sum(amount) > 100",
            "RESET ROLE",
            "CREATE TABLE audit.log (at timestamptz DEFAULT now(), what text)",
            "INSERT INTO audit.log (what) VALUES ('created'), ('filled')",
            "CREATE FUNCTION audit.note(t text) RETURNS void LANGUAGE sql AS $$ INSERT INTO audit.log (what) VALUES (t) $$"
        ] { try c.psql(sql, database: name) }
    }

    /// pg_dump of a database as plain SQL, for comparing two databases; `bin` picks the pg_dump (the cluster's own
    /// by default; the newer major's when two majors are compared).
    static func plainDump(_ c: ScratchCluster, _ db: String, bin: String? = nil) throws -> String {
        let r = try Run.program(
            (bin ?? c.bin) + "/pg_dump",
            ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "--no-comments", db])
        guard r.status == 0 else { throw TestFailure("pg_dump \(db): \(r.stderr)") }
        // Only the "\restrict" key lines (newer minor releases) and the server version in the header may differ.
        return r.stdout.split(separator: "\n").filter {
            !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict")
                && !$0.hasPrefix("-- Dumped from database version")
        }.joined(separator: "\n")
    }

    @Test(arguments: PGMajor.matrix(RepoKind.standard))
    func roundTripIntoANewDatabaseIsIdentical(repo: RepoKind, major: PGMajor) throws {
        let c = try ScratchCluster(name: "logical-\(repo)-\(major)", major: major) {
            try TestRepository.config(repo, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Self.makeApp(c)
        let b = try c.cairn(["backup", "--type", "logical", "--json"])
        #expect(b.status == 0, "\(b.stderr)")
        #expect(b.stdout.contains("\"type\" : \"logical\""))
        #expect(b.stdout.contains("\"app\""))
        let id = try #require(
            b.stdout.split(separator: "\"").first { $0.hasSuffix("L") && $0.count == 16 }.map(String.init))

        // A fresh cluster (no app_owner role) gets the roles from --globals, then the database.
        let list = try c.cairn(["list"])
        #expect(list.stdout.contains("logical"))
        let before = try Self.plainDump(c, "app")
        try c.psql("DROP DATABASE app")
        try c.psql("DROP ROLE app_owner")
        let r = try c.cairn([
            "restore", "--backup", id, "--database", "app", "--into", "app_restored", "--globals", "--jobs", "2"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.plainDump(c, "app_restored") == before)
        #expect(try c.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_owner'") == "t")
        #expect(try c.psql("SELECT count(*) FROM pg_largeobject_metadata", database: "app_restored") == "5")
        #expect(try c.psql("SELECT last_value FROM sales.invoice_no", database: "app_restored") == "424242")
        #expect(
            try c.psql(
                "SELECT attrs -> 'tier' FROM sales.customer WHERE email = 'user7@example.com'", database: "app_restored"
            ) == "1")

        // A database that already holds objects is refused, unless forced; streamed (one job) this time.
        let again = try c.cairn([
            "restore", "--backup", id, "--database", "app", "--into", "app_restored", "--jobs", "1"
        ])
        #expect(again.status == ErrorCode.restoreTargetNotEmpty.exitCode)
        #expect(again.stderr.contains("--force"))
        try c.psql("DELETE FROM audit.log", database: "app_restored")
        let forced = try c.cairn([
            "restore", "--backup", id, "--database", "app", "--into", "app_restored", "--jobs", "1", "--force"
        ])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try c.psql("SELECT count(*) FROM audit.log", database: "app_restored") == "2")

        // Asking for what the backup does not have.
        let nodb = try c.cairn(["restore", "--backup", id, "--database", "nope", "--into", "x"])
        #expect(nodb.status == ErrorCode.backupNotFound.exitCode)
        #expect(nodb.stderr.contains("it has: app, postgres"))
    }

    /// `dump` with the relation names taken out of view definitions: PostgreSQL 16 and later print a view over one
    /// relation without qualifying its columns (`sum(amount)`, where 15 printed `sum(invoice.amount)`), the one
    /// legitimate difference between a 15 and an 18 dump of the same database here.
    static func viewsUnqualified(_ dump: String) -> String {
        var inView = false
        return dump.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            if line.hasPrefix("CREATE VIEW") { inView = true; return String(line) }
            guard inView else { return String(line) }
            if line.hasSuffix(";") { inView = false }
            return String(line).replacing(/\b[a-z_]+\.(?=[a-z_])/, with: "")
        }.joined(separator: "\n")
    }

    /// The upgrade path: a logical backup of a PostgreSQL 15 cluster restored into a PostgreSQL 18 cluster (whose
    /// configuration names the same repository) holds the same objects and rows. Both are dumped with 18's pg_dump,
    /// so only the server version in the header and the views' column qualification differ.
    @Test(.enabled(if: PGMajor.tested.contains(.v15) && PGMajor.tested.contains(.v18)))
    func aBackupOf15RestoresInto18() throws {
        let old = try ScratchCluster(name: "logical-upgrade-15", major: .v15) {
            try TestRepository.config(.local, dir: $0, conninfo: $1, major: .v15)
        }
        defer { old.destroy() }
        #expect(try old.cairn(["init"]).status == 0)
        try Self.makeApp(old)
        let b = try old.cairn(["backup", "--type", "logical", "--json"])
        #expect(b.status == 0, "\(b.stderr)")
        let id = try #require(
            b.stdout.split(separator: "\"").first { $0.hasSuffix("L") && $0.count == 16 }.map(String.init))

        let new = try ScratchCluster(name: "logical-upgrade-18", major: .v18)
        defer { new.destroy() }
        // The new cluster's configuration: its own connection and programs, the old cluster's repository.
        let config = try TestRepository.config(.local, dir: new.dir, conninfo: new.conninfo, major: .v18)
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: "path: \(new.dir)/repo", with: "path: \(old.dir)/repo")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let r = try Run.cairnAsPostgres([
            "--config", config, "restore", "--backup", id, "--database", "app", "--into", "app", "--globals", "--jobs",
            "2"
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try new.psql("SHOW server_version_num").hasPrefix("18"))
        let (after, before) = (
            try Self.viewsUnqualified(Self.plainDump(new, "app", bin: PGMajor.v18.bin)),
            try Self.viewsUnqualified(Self.plainDump(old, "app", bin: PGMajor.v18.bin))
        )
        #expect(
            after == before,
            "\(Set(after.split(separator: "\n")).symmetricDifference(before.split(separator: "\n")).sorted())")
        #expect(try new.psql("SELECT count(*) FROM sales.invoice", database: "app") == "5000")
        #expect(try new.psql("SELECT count(*) FROM pg_largeobject_metadata", database: "app") == "5")
        #expect(try new.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_owner'") == "t")
        // The new cluster's own backups need a repository of its own: the old one belongs to the 15 cluster.
        let foreign = try Run.cairnAsPostgres(["--config", config, "backup", "--type", "logical"])
        #expect(foreign.status != 0 && foreign.stderr.contains("[repo.foreign]"), "\(foreign.stderr)")
    }

    @Test func aDumpKilledHalfWayCommitsNothing() throws {
        let c = try ScratchCluster(name: "logical-kill") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE DATABASE big")
        try c.psql(
            "CREATE TABLE t AS SELECT g, repeat(md5(g::text), 20) v FROM generate_series(1, 400000) g", database: "big")
        let killer = Thread {
            for _ in 0..<400 {
                let n =
                    (try? c.psql(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND state = 'active'"
                    )) ?? "0"
                if n != "0" { return }
                usleep(20_000)
            }
        }
        killer.start()
        let r = try c.cairn(["backup", "--type", "logical", "--database", "big"])
        while !killer.isFinished { usleep(50_000) }
        #expect(r.status == ErrorCode.pgTool.exitCode, "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("pg_dump failed"))
        #expect(r.stderr.contains("was not committed"))
        #expect(try c.cairn(["list", "--json"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]")
        // Nothing is left behind either (best-effort cleanup), and the next backup succeeds.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/repo/backups"))?.isEmpty ?? true)
        #expect(try c.cairn(["backup", "--type", "logical", "--database", "big"]).status == 0)
    }

    @Test func aDumpFromANewerMajorVersionIsExplained() throws {
        let c = try ScratchCluster(name: "logical-version") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        let b = try c.cairn(["backup", "--type", "logical", "--database", "postgres", "--json"])
        #expect(b.status == 0)
        // Make the manifest claim PostgreSQL 16, as if the backup came from a newer server.
        let repo = LocalRepository(root: c.dir + "/repo")
        let catalog = try Catalog.load(from: repo)
        var m = try #require(catalog.backups.first)
        m.pgVersionNum = 160004
        try repo.put(Layout.manifestKey(m.id), try SealedDocument.seal(m), options: .overwrite)
        try Run.shell("chown -R postgres \(c.dir)/repo")
        let r = try c.cairn(["restore", "--backup", m.id, "--database", "postgres", "--into", "copy"])
        #expect(r.status == ErrorCode.pgVersion.exitCode)
        #expect(r.stderr.contains("comes from PostgreSQL 16"))
        #expect(r.stderr.contains("PostgreSQL 15"))
    }
}
