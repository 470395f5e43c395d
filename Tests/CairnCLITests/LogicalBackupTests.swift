import CairnBase
import CairnCore
import CairnStorage
import Foundation
import Testing
import TestSupport

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
            "CREATE FUNCTION audit.note(t text) RETURNS void LANGUAGE sql AS $$ INSERT INTO audit.log (what) VALUES (t) $$",
        ] { try c.psql(sql, database: name) }
    }

    /// pg_dump of a database as plain SQL, for comparing two databases.
    static func plainDump(_ c: ScratchCluster, _ db: String) throws -> String {
        let r = try Run.program(c.bin + "/pg_dump", ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres", "--no-comments", db])
        guard r.status == 0 else { throw TestFailure("pg_dump \(db): \(r.stderr)") }
        // Only the "\restrict" key lines (newer minor releases) may differ between two runs.
        return r.stdout.split(separator: "\n").filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }.joined(separator: "\n")
    }

    @Test(arguments: PGMajor.matrix(RepoKind.allCases))
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
        let id = try #require(b.stdout.split(separator: "\"").first { $0.hasSuffix("L") && $0.count == 16 }.map(String.init))

        // A fresh cluster (no app_owner role) gets the roles from --globals, then the database.
        let list = try c.cairn(["list"])
        #expect(list.stdout.contains("logical"))
        let before = try Self.plainDump(c, "app")
        try c.psql("DROP DATABASE app")
        try c.psql("DROP ROLE app_owner")
        let r = try c.cairn(["restore", "--backup", id, "--database", "app", "--into", "app_restored", "--globals", "--jobs", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.plainDump(c, "app_restored") == before)
        #expect(try c.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_owner'") == "t")
        #expect(try c.psql("SELECT count(*) FROM pg_largeobject_metadata", database: "app_restored") == "5")
        #expect(try c.psql("SELECT last_value FROM sales.invoice_no", database: "app_restored") == "424242")
        #expect(try c.psql("SELECT attrs -> 'tier' FROM sales.customer WHERE email = 'user7@example.com'", database: "app_restored") == "1")

        // A database that already holds objects is refused, unless forced; streamed (one job) this time.
        let again = try c.cairn(["restore", "--backup", id, "--database", "app", "--into", "app_restored", "--jobs", "1"])
        #expect(again.status == ErrorCode.restoreTargetNotEmpty.exitCode)
        #expect(again.stderr.contains("--force"))
        try c.psql("DELETE FROM audit.log", database: "app_restored")
        let forced = try c.cairn(["restore", "--backup", id, "--database", "app", "--into", "app_restored", "--jobs", "1", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try c.psql("SELECT count(*) FROM audit.log", database: "app_restored") == "2")

        // Asking for what the backup does not have.
        let nodb = try c.cairn(["restore", "--backup", id, "--database", "nope", "--into", "x"])
        #expect(nodb.status == ErrorCode.backupNotFound.exitCode)
        #expect(nodb.stderr.contains("it has: app, postgres"))
    }

    @Test func aDumpKilledHalfWayCommitsNothing() throws {
        let c = try ScratchCluster(name: "logical-kill") { try TestRepository.config(.local, dir: $0, conninfo: $1) }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try c.psql("CREATE DATABASE big")
        try c.psql("CREATE TABLE t AS SELECT g, repeat(md5(g::text), 20) v FROM generate_series(1, 400000) g", database: "big")
        let killer = Thread {
            for _ in 0..<400 {
                let n = (try? c.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND state = 'active'")) ?? "0"
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
