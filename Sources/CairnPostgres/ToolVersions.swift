import CairnBase
import Foundation
import Synchronization

/// PostgreSQL's programs must be of the major they work on: `pg_dump` 15 refuses an 18 server half-way through a
/// backup, `pg_ctl` 15 cannot start an 18 data directory, `pg_verifybackup` 15 cannot read an 18 manifest. Cairn
/// checks the major of every program it is about to run for a cluster or a backup (`<tool> --version`, once per
/// program and process) and fails first, with both majors and the fix, instead of half-way with the tool's error.
///
/// Where the programs come from: `cluster.bin_directory` when it is set; otherwise the folder is found by the
/// major (the server's, or the backup's for a drill) with ``locate(major:environment:fileExists:pgConfigBindir:)``.
public enum ToolVersions {
    /// The major of a `--version` line: `pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → 15,
    /// `pg_ctl (PostgreSQL) 18.6` → 18, `18devel` / `18beta1` → 18, `9.6.24` → 9. Nil when there is no version.
    public static func parseMajor(_ versionOutput: String) -> Int? {
        let line = versionOutput.split(separator: "\n").first.map(String.init) ?? ""
        let words = line.split(separator: " ")
        // The word after "(PostgreSQL)"; else the first word that starts with a digit.
        let word =
            words.firstIndex(of: "(PostgreSQL)").flatMap { $0 + 1 < words.count ? words[$0 + 1] : nil }
            ?? words.first { $0.first?.isNumber == true }
        guard let word else { return nil }
        let digits = word.prefix { $0.isASCII && $0.isNumber }
        guard let major = Int(digits), major > 0 else { return nil }
        return major
    }

    /// The folders where PostgreSQL `major`'s programs are usually installed, in the order they are tried:
    /// Debian and Ubuntu (`/usr/lib/postgresql/<M>/bin`), then the PGDG packages of Red Hat-like systems
    /// (`/usr/pgsql-<M>/bin`).
    public static func conventionalFolders(major: Int) -> [String] {
        ["/usr/lib/postgresql/\(major)/bin", "/usr/pgsql-\(major)/bin"]
    }

    /// Finds the folder of PostgreSQL `major`'s programs when `cluster.bin_directory` is not set: the first
    /// ``conventionalFolders(major:)`` that has `pg_ctl`, else what `pg_config --bindir` (the first `pg_config` on
    /// `PATH`) prints. The caller still checks the programs' versions: `pg_config` may belong to another major.
    /// Nil when none is found.
    public static func locate(
        major: Int, environment: [String: String] = ProcessInfo.processInfo.environment,
        fileExists: (String) -> Bool = { FileManager.default.isExecutableFile(atPath: $0) },
        pgConfigBindir: (String) async -> String? = ToolVersions.runPGConfig
    ) async -> String? {
        if let dir = conventionalFolders(major: major).first(where: { fileExists($0 + "/pg_ctl") }) { return dir }
        let path = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        guard let pgConfig = path.map({ $0 + "/pg_config" }).first(where: fileExists),
            let dir = await pgConfigBindir(pgConfig)?.trimmingCharacters(in: .whitespacesAndNewlines), !dir.isEmpty
        else { return nil }
        return dir
    }

    /// Runs `pg_config --bindir` (the `pg_config` at `path`); nil when it fails.
    public static func runPGConfig(_ path: String) async -> String? {
        let folder = (path as NSString).deletingLastPathComponent
        return try? await ToolRunner(binDirectory: folder).run("pg_config", ["--bindir"]).stdout
    }

    /// The error for a program of the wrong major.
    static func mismatch(
        tool: String, folder: String, toolMajor: Int, major: Int, subject: String, configured: Bool
    ) -> CairnError {
        CairnError(
            .pgVersion,
            "\(tool) in \(folder) is PostgreSQL \(toolMajor) but \(subject) is PostgreSQL \(major): each major needs its own programs",
            hint: configured
                ? "point cluster.bin_directory at PostgreSQL \(major)'s programs (e.g. \(conventionalFolders(major: major)[0]))"
                : "install PostgreSQL \(major)'s programs or set cluster.bin_directory to their folder (e.g. \(conventionalFolders(major: major)[0]))"
        )
    }

    /// The programs `cairn check` proves to be of the cluster's major: those logical backups, restores and drills run.
    public static let checkedByCheck = [
        "pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_ctl", "initdb", "postgres",
        "pg_verifybackup", "pg_amcheck"
    ]

    /// Majors already read, by program path (a program does not change under a running cairn).
    static let cache = Mutex<[String: Int]>([:])
}

extension ToolRunner {
    /// Whether the folder came from the configuration: an empty `binDirectory` means `cluster.bin_directory` is not
    /// set and the programs are found by the major (``matching(major:_:for:)``).
    public var isConfigured: Bool { !binDirectory.isEmpty }

    /// The programs to run for something of PostgreSQL `major` (`subject`: "the cluster", "backup X"): this runner
    /// when `tools` in its folder all report that major, or, when no folder is configured, a runner for the folder
    /// ``ToolVersions/locate(major:environment:fileExists:pgConfigBindir:)`` finds. Tools missing from the folder
    /// are skipped here (running them reports that). Throws `pg.version` naming both majors and the fix.
    public func matching(major: Int, _ tools: [String], for subject: String) async throws -> ToolRunner {
        var runner = self
        if !isConfigured {
            guard let dir = await ToolVersions.locate(major: major) else {
                throw CairnError(
                    .pgVersion,
                    "no PostgreSQL \(major) programs found for \(subject) (looked in \(ToolVersions.conventionalFolders(major: major).joined(separator: ", ")) and for pg_config on PATH)",
                    hint: "install PostgreSQL \(major)'s client programs, or set cluster.bin_directory to their folder")
            }
            runner = ToolRunner(binDirectory: dir)
        }
        for tool in tools {
            let path = runner.binDirectory + "/" + tool
            guard FileManager.default.isExecutableFile(atPath: path) else { continue }
            let known = ToolVersions.cache.withLock { $0[path] }
            let toolMajor: Int
            if let known {
                toolMajor = known
            } else {
                let out = try await runner.run(tool, ["--version"]).stdout
                guard let m = ToolVersions.parseMajor(out) else {
                    throw CairnError(
                        .pgTool,
                        "\(path) --version printed no PostgreSQL version (\(out.trimmingCharacters(in: .whitespacesAndNewlines).prefix(80)))",
                        hint: "cluster.bin_directory must hold PostgreSQL's own programs")
                }
                toolMajor = m
                ToolVersions.cache.withLock { $0[path] = m }
            }
            guard toolMajor == major else {
                throw ToolVersions.mismatch(
                    tool: tool, folder: runner.binDirectory, toolMajor: toolMajor, major: major,
                    subject: subject, configured: isConfigured)
            }
        }
        return runner
    }
}
