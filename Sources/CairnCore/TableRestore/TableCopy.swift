import CairnBase
import CairnPostgres
import Foundation

/// A table to bring back: where it is in the scratch cluster, and the new name it gets in the live database.
public struct TableMove: Codable, Sendable, Equatable {
    public var schema: String
    public var name: String
    public var targetSchema: String
    public var targetName: String

    enum CodingKeys: String, CodingKey {
        case schema, name
        case targetSchema = "target_schema"
        case targetName = "target_name"
    }

    public var source: String { "\(schema).\(name)" }
    public var target: String { "\(targetSchema).\(targetName)" }
    var sourceSQL: String { "\(SQL.ident(schema)).\(SQL.ident(name))" }
    var targetSQL: String { "\(SQL.ident(targetSchema)).\(SQL.ident(targetName))" }
}

/// Names for restored objects (pure): `<name>_restored_<YYYYMMDDHHMMSS>`, within PostgreSQL's 63 bytes.
public enum TableNaming {
    /// `orders` → `orders_restored_20261203091500`; a long name is cut so the suffix fits.
    public static func restored(_ name: String, stamp: String, attempt: Int = 0) -> String {
        let suffix = "_restored_\(stamp)" + (attempt > 0 ? "_\(attempt)" : "")
        var base = name
        while base.utf8.count + suffix.utf8.count > 63 { base.removeLast() }
        return base + suffix
    }

    /// New names for the objects in `names` that are in `taken` (or collide with each other's new names); the
    /// others keep their names.
    public static func renames(_ names: [String], taken: Set<String>, stamp: String) -> [String: String] {
        var used = taken.union(names)
        var out: [String: String] = [:]
        for n in names.sorted() where taken.contains(n) {
            var attempt = 0
            var candidate = restored(n, stamp: stamp)
            while used.contains(candidate) {
                attempt += 1
                candidate = restored(n, stamp: stamp, attempt: attempt)
            }
            used.insert(candidate)
            out[n] = candidate
        }
        return out
    }

    /// `20261203091500` (UTC).
    public static func stamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMddHHmmss"
        return f.string(from: date)
    }
}

/// SQL text helpers.
enum SQL {
    static func ident(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
    static func literal(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
}

/// The SQL side of `restore --table`: checks in the live database, renames in the scratch cluster so that nothing
/// collides with the live database's names, and row counts.
enum TableCopy {
    /// Refuses a target name the live database already has, and a target schema it does not have.
    static func checkLive(_ moves: [TableMove], live: PGConnection) throws {
        for m in moves {
            guard try live.scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1", [m.targetSchema]) != nil else {
                throw CairnError(
                    .tableUnknown, "the live database has no schema \(m.targetSchema) to restore \(m.source) into",
                    hint: "create the schema first, or choose another with --into schema.name")
            }
            if try live.scalar(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                [m.targetSchema, m.targetName]) != nil
            {
                throw CairnError(
                    .tableExists,
                    "\(m.target) already exists in the live database: restoring \(m.source) there would replace it",
                    hint: "choose another name with --into schema.name, or rename the existing one first")
            }
        }
    }

    /// Names in a schema of the live database that a restored index, sequence or statistics object must not take.
    static func takenNames(schema: String, live: PGConnection) throws -> Set<String> {
        let rows = try live.query(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
            UNION SELECT s.stxname FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE n.nspname = $1
            """, [schema])
        return Set(rows.compactMap { $0[0] ?? nil })
    }

    /// In the scratch cluster: the table gets its new name and schema; its indexes (and the constraints they back),
    /// owned sequences and statistics objects whose names the live schema has get new ones; foreign keys to other
    /// tables are dropped (restoring them would add triggers to live tables). Returns what was left out.
    static func prepare(_ m: TableMove, scratch: PGConnection, taken: Set<String>, stamp: String) throws -> [String] {
        guard
            let oid = try scratch.scalar(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm')",
                [m.schema, m.name])
        else {
            throw CairnError(
                .tableUnknown, "table \(m.source) did not exist at the recovery target",
                hint: "`cairn find --table \(m.source)` lists its mistakes with a target before each")
        }
        var left: [String] = []
        for fk in try scratch.query(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::oid AND contype = 'f' AND confrelid <> conrelid",
            [oid])
        {
            try exec(scratch, "ALTER TABLE \(m.sourceSQL) DROP CONSTRAINT \(SQL.ident(fk[0] ?? ""))")
            left.append("foreign key \(fk[0] ?? "?") of \(m.source) (\(fk[1] ?? "")) was not restored")
        }
        try renameDependents(m, oid: oid, scratch: scratch, taken: taken, stamp: stamp)
        if m.targetSchema != m.schema {
            try exec(scratch, "CREATE SCHEMA IF NOT EXISTS \(SQL.ident(m.targetSchema))")
            try exec(scratch, "ALTER TABLE \(m.sourceSQL) SET SCHEMA \(SQL.ident(m.targetSchema))")
        }
        if m.targetName != m.name {
            try exec(
                scratch,
                "ALTER TABLE \(SQL.ident(m.targetSchema)).\(SQL.ident(m.name)) RENAME TO \(SQL.ident(m.targetName))")
        }
        return left
    }

    /// Renames the table's indexes, owned sequences and statistics objects whose names the live schema has.
    static func renameDependents(
        _ m: TableMove, oid: String, scratch: PGConnection, taken: Set<String>, stamp: String
    )
        throws
    {
        let rows = try scratch.query(
            """
            SELECT 'INDEX', c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::oid
            UNION ALL SELECT 'SEQUENCE', s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
              WHERE d.refobjid = $1::oid AND d.classid = 'pg_class'::regclass AND s.relkind = 'S' AND d.deptype IN ('a', 'i')
            UNION ALL SELECT 'STATISTICS', stxname FROM pg_statistic_ext WHERE stxrelid = $1::oid
            """, [oid])
        let objects = rows.compactMap { r in r[1].map { (kind: r[0] ?? "", name: $0) } }
        let renames = TableNaming.renames(objects.map(\.name), taken: taken, stamp: stamp)
        for o in objects {
            guard let new = renames[o.name] else { continue }
            try exec(scratch, "ALTER \(o.kind) \(SQL.ident(m.schema)).\(SQL.ident(o.name)) RENAME TO \(SQL.ident(new))")
        }
    }

    static func rowCount(_ table: String, conn: PGConnection) throws -> Int64 {
        Int64(try conn.scalar("SELECT count(*) FROM \(table)") ?? "") ?? -1
    }

    static func exec(_ c: PGConnection, _ sql: String) throws {
        do {
            _ = try c.query(sql)
        } catch let e as CairnError {
            throw CairnError(.restoreFailed, "in the scratch cluster, \(sql) failed: \(e.message)", cause: e)
        }
    }
}
