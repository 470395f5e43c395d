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

    func run() async throws {
        var items: [Item] = []
        var firstError: (any Error)?
        func fail(_ name: String, _ error: any Error) {
            let (code, message, hint) = describeError(error)
            items.append(Item(name: name, ok: false, detail: Redaction.redact(message), code: code.rawValue, hint: hint.map(Redaction.redact)))
            firstError = firstError ?? error
        }

        let ctx: AppContext
        do {
            ctx = try AppContext.load(global)
            items.append(Item(name: "configuration", ok: true, detail: ctx.config.sourcePath ?? "-"))
        } catch {
            fail("configuration", error)
            return try finish(items, firstError)
        }

        let cluster: ClusterInfo? = await {
            do {
                let info = try await Blocking.run { () -> (ClusterInfo, String) in
                    let c = try ctx.connect()
                    let info = try ClusterInfo.read(c)
                    let walLevel = try c.scalar("SHOW wal_level") ?? "?"
                    let archiveMode = try c.scalar("SHOW archive_mode") ?? "?"
                    return (info, "wal_level=\(walLevel), archive_mode=\(archiveMode)")
                }
                let v = info.0.versionNum
                items.append(Item(name: "cluster", ok: true,
                                  detail: "PostgreSQL \(v / 10000).\(v % 100), system identifier \(info.0.systemIdentifier), \(info.1)"))
                return info.0
            } catch {
                fail("cluster", error)
                return nil
            }
        }()

        // The programs cairn runs for this cluster (logical backups, restores, drills) must be of its major.
        if let cluster {
            do {
                let tools = try await ctx.tools.matching(major: cluster.majorVersion, ToolVersions.checkedByCheck, for: "the cluster")
                items.append(Item(name: "programs", ok: true,
                                  detail: "PostgreSQL \(cluster.majorVersion)'s programs in \(tools.binDirectory)\(ctx.tools.isConfigured ? "" : " (found by the major)")"))
            } catch {
                fail("programs", error)
            }
        }

        do {
            let detail = try await Blocking.run { () -> String in
                let repo = try ctx.makeRepository()
                let probe = try RepositoryProbe.run(repo: repo)
                var detail = "\(probe.location) is reachable and writable (probe round trip \(probe.roundTripMs) ms)"
                let info = try RepositoryInfo.require(from: repo)
                if let cluster { try info.checkBelongs(to: cluster, repo: repo) }
                detail += "; initialised for cluster \(info.systemIdentifier)"
                return detail
            }
            items.append(Item(name: "repository", ok: true, detail: detail))
        } catch {
            fail("repository", error)
        }
        if items.last?.name == "repository" && items.last?.ok == true {
            do {
                try await Blocking.run { try RepositoryProbe.proveCreateOnly(repo: try ctx.makeRepository()) }
                items.append(Item(name: "create-only", ok: true, detail: "the store refuses to replace an object on a create-only write"))
            } catch {
                fail("create-only", error)
            }
        }
        try finish(items, firstError)
    }

    private func finish(_ items: [Item], _ firstError: (any Error)?) throws {
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
            throw BaseError(code, message, hint: hint)
        }
    }
}
