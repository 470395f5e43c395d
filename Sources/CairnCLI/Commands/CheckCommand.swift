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
        abstract: "Check that the configuration, the cluster connection and the repository all work.")

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
        else { return try finish(results) }
        let cluster = await results.record("cluster") { try await clusterRow(ctx) }
        // The programs cairn runs for this cluster (logical backups, restores, drills) must be of its major.
        if let cluster { _ = await results.record("programs") { ((), try await programsRow(ctx, cluster)) } }
        if await results.record("repository", { ((), try await repositoryRow(ctx, cluster: cluster)) }) != nil {
            _ = await results.record("create-only") {
                try await Blocking.run { try RepositoryProbe.proveCreateOnly(repo: try ctx.makeRepository()) }
                return ((), "the store refuses to replace an object on a create-only write")
            }
        }
        try finish(results)
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
    private func repositoryRow(_ ctx: AppContext, cluster: ClusterInfo?) async throws -> String {
        let (probe, info) = try await Blocking.run {
            try SetupCheck.repository(try ctx.makeRepository(), cluster: cluster)
        }
        return
            "\(probe.location) is reachable and writable (probe round trip \(probe.roundTripMs) ms); initialised for cluster \(info.systemIdentifier)"
    }

    private func finish(_ results: Results) throws {
        let (items, firstError) = (results.items, results.firstError)
        if json {
            try Output.json(items)
        } else {
            // The first failure is printed once, as the error line every command ends with (stderr): its row
            // points there instead of repeating it. Later failures have no other line, so their rows say it all.
            let first = items.firstIndex { !$0.ok }
            for (n, i) in items.enumerated() {
                let name = i.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                if n == first {
                    Output.line("\(name) FAIL see the error below\(i.code.map { " [\($0)]" } ?? "")")
                    continue
                }
                Output.line("\(name) \(i.ok ? "ok  " : "FAIL") \(i.detail)\(i.code.map { " [\($0)]" } ?? "")")
                if let h = i.hint { Output.line("               HINT: \(h)") }
            }
        }
        if let firstError {
            let (code, message, hint) = describeError(firstError)
            throw CairnError(code, message, hint: hint)
        }
    }
}
