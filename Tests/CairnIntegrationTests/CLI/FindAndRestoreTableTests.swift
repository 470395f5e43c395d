import CairnBase
import Foundation
import TestSupport
import Testing

/// Issue #22's acceptance case, on PostgreSQL 15 and 18 with the repository on the S3 emulator (TLS, SigV4): under
/// pgbench load, a DROP TABLE, a TRUNCATE and a DELETE without WHERE on three tables are found by `cairn find`
/// (the test gives it no time), and `cairn restore --table` with the target find printed brings each table back
/// with exactly the rows it had just before its mistake, while the live database keeps everything written since.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct FindAndRestoreTableTests {
    /// A digest of a table's rows.
    static func digest(_ c: ScratchCluster, _ table: String) throws -> String {
        try c.psql(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(id::text || '/' || v, ',' ORDER BY id)), '') FROM \(table)"
        )
    }

    /// Three tables with an index, a comment, a grant and an owned sequence each; `later` takes writes after the
    /// mistakes.
    static func createTables(_ c: ScratchCluster) throws {
        try c.psql("CREATE ROLE reader")
        for t in ["dropped", "truncated", "deleted"] {
            try c.psql(
                """
                CREATE TABLE \(t) (id bigserial PRIMARY KEY, v text NOT NULL, at timestamptz DEFAULT clock_timestamp());
                CREATE INDEX \(t)_v ON \(t) (v);
                COMMENT ON TABLE \(t) IS 'the \(t) table';
                GRANT SELECT ON \(t) TO reader;
                INSERT INTO \(t) (v) SELECT '\(t)-' || g FROM generate_series(1, 1500) g;
                """)
        }
        try c.psql("CREATE TABLE later (id int PRIMARY KEY)")
    }

    /// pgbench's standard transactions for `seconds`, in the background.
    static func load(_ c: ScratchCluster, seconds: Int) -> Thread {
        let t = Thread {
            _ = try? Run.shell(
                "runuser -u postgres -- \(c.bin)/pgbench -n -h \(c.socketDir) -p \(c.port) -U postgres -c 2 -T \(seconds) postgres >/dev/null 2>&1",
                check: false)
        }
        t.start()
        return t
    }

    /// The candidates of `cairn find --json`.
    static func find(_ c: ScratchCluster, _ args: [String] = []) throws -> [[String: Any]] {
        let r = try c.cairn(["find", "--json"] + args)
        guard r.status == 0 else { throw TestFailure("cairn find failed (\(r.status)): \(r.stderr)") }
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return doc?["candidates"] as? [[String: Any]] ?? []
    }

    @Test(arguments: PGMajor.tested)
    func threeMistakesUnderLoadAreFoundAndEachTableComesBackExactly(major: PGMajor) throws {
        let c = try ScratchCluster(name: "find-\(major)", major: major) {
            try Run.shell("mkdir -p \($0)/scratch && chown postgres:postgres \($0)/scratch")
            return try TestRepository.config(.s3, dir: $0, conninfo: $1, major: major)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Run.shell(
            "runuser -u postgres -- \(c.bin)/pgbench -i -q -s 1 -h \(c.socketDir) -p \(c.port) -U postgres postgres >/dev/null 2>&1"
        )
        try Self.createTables(c)
        let backup = try c.cairn(["backup"])
        #expect(backup.status == 0, "\(backup.stderr)")

        // Under load: more rows after the backup, then the three mistakes, then more writes.
        let pgbench = Self.load(c, seconds: 8)
        var expected: [String: String] = [:]
        for (t, mistake) in [
            ("dropped", "DROP TABLE dropped"), ("truncated", "TRUNCATE truncated"), ("deleted", "DELETE FROM deleted")
        ] {
            try c.psql("INSERT INTO \(t) (v) SELECT '\(t)-after-backup-' || g FROM generate_series(1, 200) g")
            expected[t] = try Self.digest(c, t)
            try c.psql(mistake)
            try c.psql("INSERT INTO later VALUES (\(expected.count))")
        }
        while !pgbench.isFinished { usleep(100_000) }
        let history = try c.psql("SELECT count(*) FROM pgbench_history")
        try c.switchAndWaitForArchive()

        // find names the three mistakes, and nothing of pgbench's small transactions.
        let started = Date()
        let candidates = try Self.find(c)
        let findSeconds = Date().timeIntervalSince(started)
        func pick(_ kind: String, _ table: String) throws -> [String: Any] {
            try #require(
                candidates.first { $0["kind"] as? String == kind && $0["table"] as? String == "public.\(table)" },
                "find lists the \(kind) of \(table): \(candidates)")
        }
        let found = [
            "dropped": try pick("drop", "dropped"), "truncated": try pick("truncate", "truncated"),
            "deleted": try pick("delete", "deleted")
        ]
        #expect(found["deleted"]?["rows"] as? Int == 1700)
        // pgbench -i truncated its own tables before loading them (also found); its transactions under load are not.
        let ours = candidates.filter { !($0["table"] as? String ?? "").hasPrefix("public.pgbench") }
        #expect(ours.count == 3, "\(candidates)")
        #expect(
            !candidates.contains {
                $0["kind"] as? String != "truncate" && ($0["table"] as? String ?? "").hasPrefix("public.pgbench")
            })
        let narrowed = try Self.find(c, ["--table", "public.truncated"])
        #expect(narrowed.count == 1 && narrowed.first?["kind"] as? String == "truncate")

        // Each table comes back with the rows it had just before its mistake, under a new name.
        var restoreSeconds: [String] = []
        for t in ["dropped", "truncated", "deleted"] {
            let target = try #require(found[t]?["restore_arguments"] as? [String])
            let t0 = Date()
            let r = try c.cairn(
                ["restore", "--table", "public.\(t)", "--scratch-dir", c.dir + "/scratch", "--json"] + target)
            restoreSeconds.append(String(format: "%@ %.1f s", t, Date().timeIntervalSince(t0)))
            #expect(r.status == 0, "restore --table \(t): \(r.stderr)")
            let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let restored = try #require((doc?["tables"] as? [[String: Any]])?.first?["restored_as"] as? String)
            #expect(restored.hasPrefix("public.\(t)_restored_"))
            #expect(try Self.digest(c, restored) == expected[t], "\(t) has its rows from just before the mistake")
            #expect(try c.psql("SELECT obj_description('\(restored)'::regclass)") == "the \(t) table")
            #expect(try c.psql("SELECT has_table_privilege('reader', '\(restored)', 'SELECT')") == "t")
            #expect(try c.psql("SELECT count(*) FROM pg_indexes WHERE tablename = '\(restored.dropFirst(7))'") == "2")
        }
        // Nothing else changed: the later writes and pgbench's rows are there, the damaged tables as they were.
        #expect(try c.psql("SELECT count(*) FROM later") == "3")
        #expect(try c.psql("SELECT count(*) FROM pgbench_history") == history)
        #expect(try c.psql("SELECT to_regclass('dropped') IS NULL") == "t")
        #expect(try c.psql("SELECT count(*) FROM truncated") == "0")
        #expect(try c.psql("SELECT count(*) FROM deleted") == "0")
        try checkBeforeIntoOutputAndRefusals(c, found: found, expected: expected)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: c.dir + "/scratch")
        #expect(leftovers.isEmpty, "the scratch clusters are removed: \(leftovers)")
        Measurements.record([
            "find (\(major)): \(candidates.count) candidates in \(String(format: "%.1f", findSeconds)) s; restore --table: \(restoreSeconds.joined(separator: ", "))"
        ])
    }

    /// `--before` a candidate with `--into`, `--output` (a dump, nothing loaded), the human listing, and the
    /// refusals: an existing name, an unknown table, a range without WAL, a `--before` that is no candidate.
    func checkBeforeIntoOutputAndRefusals(
        _ c: ScratchCluster, found: [String: [String: Any]], expected: [String: String]
    )
        throws
    {
        let scratch = ["--scratch-dir", c.dir + "/scratch"]
        let deleted = try #require(found["deleted"]?["reference"] as? String)
        let into = try c.cairn(
            ["restore", "--table", "deleted", "--before", deleted, "--into", "public.deleted_copy"] + scratch)
        #expect(into.status == 0, "\(into.stderr)")
        #expect(into.stdout.contains("public.deleted → public.deleted_copy (1700 rows)"), "\(into.stdout)")
        #expect(try Self.digest(c, "deleted_copy") == expected["deleted"])

        let dump = c.dir + "/truncated.dump"
        let truncated = try #require(found["truncated"]?["reference"] as? String)
        let out = try c.cairn(
            ["restore", "--table", "public.truncated", "--before", truncated, "--output", dump] + scratch)
        #expect(out.status == 0, "\(out.stderr)")
        let listing = try Run.program(c.bin + "/pg_restore", ["-l", dump])
        #expect(listing.stdout.contains("TABLE DATA public truncated_restored_"), "\(listing.stdout)")
        #expect(
            try c.psql("SELECT count(*) FROM pg_class WHERE relname LIKE 'truncated_restored_%' AND relkind = 'r'")
                == "1")

        let human = try c.cairn(["find", "--table", "public.dropped"])
        #expect(human.status == 0)
        #expect(human.stdout.contains("dropped public.dropped (name from backup "), "\(human.stdout)")
        #expect(human.stdout.contains("--target-lsn"))

        let exists = try c.cairn(
            ["restore", "--table", "public.deleted", "--before", deleted, "--into", "public.later"] + scratch)
        #expect(exists.status == ErrorCode.tableExists.exitCode, "\(exists.stderr)")
        #expect(exists.stderr.contains("HINT:"))
        let unknown = try c.cairn(["find", "--table", "public.nope"])
        #expect(unknown.status == ErrorCode.tableUnknown.exitCode, "\(unknown.stderr)")
        let empty = try c.cairn(["find", "--since", "2000-01-01 00:00:00+00", "--until", "2000-01-02 00:00:00+00"])
        #expect(empty.status == ErrorCode.walMissing.exitCode, "\(empty.stderr)")
        let bad = try c.cairn(["restore", "--table", "public.deleted", "--before", "yesterday"])
        #expect(bad.status == ErrorCode.usage.exitCode, "\(bad.stderr)")
    }

    /// From a logical backup the table comes back as it was dumped (its database restored with its roles into a
    /// scratch cluster, then copied out like from a physical one); a recovery target is refused with it.
    @Test func aTableComesBackFromALogicalBackup() throws {
        let c = try ScratchCluster(name: "find-logical") {
            try Run.shell("mkdir -p \($0)/scratch && chown postgres:postgres \($0)/scratch")
            return try TestRepository.config(.s3, dir: $0, conninfo: $1)
        }
        defer { c.destroy() }
        #expect(try c.cairn(["init"]).status == 0)
        try Self.createTables(c)
        let expected = try Self.digest(c, "deleted")
        let backup = try c.cairn(["backup", "--type", "logical", "--database", "postgres", "--json"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let id = try #require(
            (try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["id"] as? String)
        let truncated = try Self.digest(c, "truncated")
        try c.psql("DELETE FROM deleted")
        try c.psql("TRUNCATE truncated")
        let scratch = ["--scratch-dir", c.dir + "/scratch"]
        let r = try c.cairn(["restore", "--table", "public.deleted", "--table", "truncated", "--backup", id] + scratch)
        #expect(r.status == 0, "\(r.stderr)")
        let name = try c.psql("SELECT relname FROM pg_class WHERE relname LIKE 'deleted_restored_%' AND relkind = 'r'")
        #expect(try Self.digest(c, name) == expected)
        let other = try c.psql(
            "SELECT relname FROM pg_class WHERE relname LIKE 'truncated_restored_%' AND relkind = 'r'")
        #expect(try Self.digest(c, other) == truncated, "two tables in one run")
        #expect(try c.psql("SELECT has_table_privilege('reader', '\(name)', 'SELECT')") == "t")
        let withTarget = try c.cairn(["restore", "--table", "public.deleted", "--backup", id, "--immediate"] + scratch)
        #expect(withTarget.status == ErrorCode.usage.exitCode, "\(withTarget.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.dir + "/scratch").isEmpty)
    }
}
