import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import CairnStorage
import Foundation

/// `cairn check`: configuration, cluster connection, repository and the store's create-only writes, each reported
/// on its own line.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check that the configuration, the cluster connection and the repository all work.",
        discussion: """
            With several repositories, each one's rows (repository, create-only) come under a heading `repository \
            NAME (location)`, every repository is checked, and the command fails with the first failure, named by its \
            repository; --json then prints {"checks": [...], "repositories": [{"name", "location", "result": [...]}]}.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    struct Item: Codable {
        var name: String
        var ok: Bool
        var detail: String
        var code: String?
        var hint: String?
    }

    /// The rows so far, and the first failure (the command's error).
    struct Results {
        var items: [Item] = []
        var firstError: (any Error)?

        /// Runs one check: a row with its detail when it passes (and its value for later checks), else a row with
        /// the error (nil).
        mutating func record<T>(_ name: String, _ body: () async throws -> (T, String)) async -> T? {
            do {
                let (value, detail) = try await body()
                items.append(Item(name: name, ok: true, detail: detail))
                return value
            } catch {
                let (code, message, hint) = describeError(error)
                items.append(
                    Item(
                        name: name, ok: false, detail: Redaction.redact(message), code: code.rawValue,
                        hint: hint.map(Redaction.redact)))
                firstError = firstError ?? error
                return nil
            }
        }
    }

    func run() async throws {
        var results = Results()
        guard
            let ctx = await results.record(
                "configuration",
                {
                    let ctx = try AppContext.load(global)
                    return (ctx, ctx.config.sourcePath ?? "-")
                })
        else { return try finish(results, sections: []) }
        let cluster = await results.record("cluster") { try await clusterRow(ctx) }
        // The programs cairn runs for this cluster (logical backups, restores, drills) must be of its major.
        if let cluster { _ = await results.record("programs") { ((), try await programsRow(ctx, cluster)) } }
        let set: RepositorySet
        do { set = try ctx.makeRepositories() } catch {
            // A repository the configuration cannot make (e.g. its credentials) fails the repository row.
            _ = await results.record("repository") { () async throws -> ((), String) in throw error }
            return try finish(results, sections: [])
        }
        var sections: [Section] = []
        for m in set.members {
            var rows = Results()
            if await rows.record("repository", { ((), try await repositoryRow(m.repo, cluster: cluster)) }) != nil {
                _ = await rows.record("create-only") {
                    try await Blocking.run { try RepositoryProbe.proveCreateOnly(repo: m.repo) }
                    return ((), "the store refuses to replace an object on a create-only write")
                }
            }
            sections.append(Section(name: m.name, location: m.repo.location, results: rows))
        }
        if !set.isSeveral, let only = sections.first {
            // One repository: its rows follow the others, as they always did.
            results.items += only.results.items
            results.firstError = results.firstError ?? only.results.firstError
            sections = []
        }
        try finish(results, sections: sections)
    }

    /// The cluster's identity and version, with its WAL settings.
    private func clusterRow(_ ctx: AppContext) async throws -> (ClusterInfo, String) {
        let (info, settings) = try await Blocking.run { try SetupCheck.cluster(try ctx.connect()) }
        let v = info.versionNum
        return (
            info,
            "PostgreSQL \(v / 10000).\(v % 100), system identifier \(info.systemIdentifier), "
                + "wal_level=\(settings.walLevel), archive_mode=\(settings.archiveMode)"
        )
    }

    /// Where the programs of the cluster's major are.
    private func programsRow(_ ctx: AppContext, _ cluster: ClusterInfo) async throws -> String {
        let tools = try await ctx.tools.matching(
            major: cluster.majorVersion, ToolVersions.checkedByCheck, for: "the cluster")
        return
            "PostgreSQL \(cluster.majorVersion)'s programs in \(tools.binDirectory)\(ctx.tools.isConfigured ? "" : " (found by the major)")"
    }

    /// The repository is reachable, writable and initialised for this cluster.
    private func repositoryRow(_ repo: any Repository, cluster: ClusterInfo?) async throws -> String {
        let (probe, info) = try await Blocking.run { try SetupCheck.repository(repo, cluster: cluster) }
        return
            "\(probe.location) is reachable and writable (probe round trip \(probe.roundTripMs) ms); initialised for cluster \(info.systemIdentifier)"
    }

    /// One repository's rows, with several repositories.
    struct Section {
        var name: String
        var location: String
        var results: Results
    }

    /// The JSON with several repositories: the shared rows, then each repository's.
    struct SeveralJSON: Encodable {
        struct Entry: Encodable {
            var name: String
            var location: String
            var result: [Item]
        }
        var checks: [Item]
        var repositories: [Entry]
    }

    /// Prints the rows (with several repositories, each repository's under its heading) and fails with the first
    /// failure, named by its repository.
    private func finish(_ results: Results, sections: [Section]) throws {
        var firstError = results.firstError
        for s in sections where firstError == nil {
            firstError = s.results.firstError.map { e in
                let (code, message, hint) = describeError(e)
                return CairnError(code, "repository \(s.name): \(message)", hint: hint)
            }
        }
        if json {
            if sections.isEmpty {
                try Output.json(results.items)
            } else {
                try Output.json(
                    SeveralJSON(
                        checks: results.items,
                        repositories: sections.map {
                            .init(name: $0.name, location: $0.location, result: $0.results.items)
                        }))
            }
        } else {
            // The first failure is printed once, as the error line every command ends with (stderr): its row
            // points there instead of repeating it. Later failures have no other line, so their rows say it all.
            var pointed = false
            Self.printRows(results.items, pointed: &pointed)
            for s in sections {
                Output.line("repository \(s.name) (\(s.location))")
                Self.printRows(s.results.items, pointed: &pointed)
            }
        }
        if let firstError {
            let (code, message, hint) = describeError(firstError)
            throw CairnError(code, message, hint: hint)
        }
    }

    /// Rows, one a line; the first failing row of the whole command (unless `pointed` already) points at the error
    /// line.
    private static func printRows(_ items: [Item], pointed: inout Bool) {
        for i in items {
            let name = i.name.padding(toLength: 14, withPad: " ", startingAt: 0)
            if !i.ok && !pointed {
                pointed = true
                Output.line("\(name) FAIL see the error below\(i.code.map { " [\($0)]" } ?? "")")
                continue
            }
            Output.line("\(name) \(i.ok ? "ok  " : "FAIL") \(i.detail)\(i.code.map { " [\($0)]" } ?? "")")
            if let h = i.hint { Output.line("               HINT: \(h)") }
        }
    }
}
