import CairnBase
import CairnPostgres
import CairnStorage
import Foundation

/// Names file nodes and relation OIDs for `cairn find`: first the live cluster's catalog
/// (`pg_filenode_relation`), then the relation map of the newest backup taken at or before the event, then older
/// backups' maps. A relation created after the last backup and dropped before `find` runs has no name anywhere: it
/// is reported by its file nodes. Lookups are cached; the live catalog is asked once per file node.
public final class NameResolver: RelationNames {
    let conninfo: String?
    let maps: [(backup: BackupManifest, load: () throws -> RelationMap)]
    private var loaded: [String: RelationMap?] = [:]
    private var liveDatabases: [UInt32: String]?
    private var connections: [UInt32: PGConnection] = [:]
    private var liveCache: [FileNodeRef: NamedRelation?] = [:]
    /// Why the live catalog could not be asked, when it could not (the result says so).
    public private(set) var liveProblem: String?

    /// `conninfo`: the live cluster (nil: names from the backups' maps only).
    public init(catalog: Catalog, repo: any Repository, pipeline: Pipeline, conninfo: String?) {
        self.conninfo = conninfo
        maps = catalog.backups.filter { $0.relations != nil }.reversed().map { b in
            (b, { try RelationMap.load(b.relations!, repo: repo, pipeline: pipeline) })
        }
    }

    public func relation(_ ref: FileNodeRef, at time: Date) -> NamedRelation? {
        if let n = live(ref) { return n }
        return fromMaps(at: time) { $0.relation(database: ref.database, fileNode: ref.fileNode) }
    }

    public func relation(database: UInt32, oid: UInt32, at time: Date) -> NamedRelation? {
        fromMaps(at: time) { $0.relation(database: database, oid: oid) }
    }

    /// A database's name: the live cluster's, else a backup map's.
    public func databaseName(_ oid: UInt32) -> String? {
        if let n = liveDatabaseNames()[oid] { return n }
        for m in maps {
            if let map = map(m.backup.id, m.load), let d = map.databases.first(where: { $0.oid == oid }) {
                return d.name
            }
        }
        return nil
    }

    /// Every `schema.name` a table had in the live cluster or any backup's map (to check `--table`).
    public func knowsTable(_ qualified: String, database: String?) -> Bool {
        let parts = qualified.split(separator: ".", maxSplits: 1).map(String.init)
        for (oid, name) in liveDatabaseNames() where database == nil || database == name {
            let found = try? connection(oid)?.scalar(
                "SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2))", parts)
            if found != nil { return true }
        }
        for m in maps {
            guard let map = map(m.backup.id, m.load) else { continue }
            for d in map.databases where database == nil || database == d.name {
                if d.relations.contains(where: { $0.isTable && $0.qualifiedName == qualified }) { return true }
            }
        }
        return false
    }

    func fromMaps(at time: Date, _ find: (RelationMap) -> RelationMap.Relation?) -> NamedRelation? {
        for m in maps where m.backup.start.time <= time {
            guard let map = map(m.backup.id, m.load), let r = find(map) else { continue }
            return NamedRelation(schema: r.schema, name: r.name, kind: r.kind, source: "backup \(m.backup.id)")
        }
        return nil
    }

    func map(_ id: String, _ load: () throws -> RelationMap) -> RelationMap? {
        if let m = loaded[id] { return m }
        let m = try? load()
        loaded[id] = m
        return m
    }

    func liveDatabaseNames() -> [UInt32: String] {
        if let liveDatabases { return liveDatabases }
        var names: [UInt32: String] = [:]
        if let conninfo {
            do {
                let c = try PGConnection(conninfo: conninfo)
                for r in try c.query("SELECT oid, datname FROM pg_database WHERE datallowconn") {
                    if let o = r[0].flatMap(UInt32.init), let n = r[1] { names[o] = n }
                }
            } catch {
                liveProblem = describeError(error).message
            }
        }
        liveDatabases = names
        return names
    }

    func live(_ ref: FileNodeRef) -> NamedRelation? {
        if let cached = liveCache[ref] { return cached }
        var found: NamedRelation?
        if let conn = connection(ref.database) {
            let row = try? conn.query(
                """
                SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.oid = pg_filenode_relation($1::oid, $2::oid)
                """, [String(ref.tablespace), String(ref.fileNode)]
            ).first
            if let row, let s = row[0], let n = row[1], let k = row[2] {
                found = NamedRelation(schema: s, name: n, kind: k, source: "live")
            }
        }
        liveCache[ref] = found
        return found
    }

    func connection(_ database: UInt32) -> PGConnection? {
        if let c = connections[database] { return c }
        guard let conninfo, let name = liveDatabaseNames()[database],
            let c = try? PGConnection(conninfo: (try Conninfo(conninfo)).with(database: name))
        else { return nil }
        connections[database] = c
        return c
    }
}
