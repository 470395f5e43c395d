import ArgumentParser
import CairnBase
import CairnCore
import CairnPostgres
import Foundation

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the repository for this cluster (cairn.json), or confirm it exists.",
        discussion:
            """
            Reads the cluster's system identifier and version over libpq. Refuses a repository that belongs to another \
            cluster. With several repositories, initializes each (the same identity), reporting each under a heading \
            `repository NAME (location)`; --json then prints {"repositories": [{"name", "location", "result", \
            "error"}]}. One that fails is reported, the others are initialized, and the command then fails.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() async throws {
        let ctx = try AppContext.load(global)
        let (cluster, timeline) = try await Blocking.run {
            let conn = try ctx.connect()
            return (try ClusterInfo.read(conn), try TimelineWitness.currentTimeline(conn))
        }
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in
                try await Blocking.run {
                    let result = try InitOperation.run(repo: m.repo, cluster: cluster, clock: SystemClock())
                    // The configured cluster's timeline starts production's recorded history.
                    if let timeline {
                        try TimelineWitness.confirmProduction(
                            timeline, repo: m.repo, clock: SystemClock(), decidedBy: "init")
                    }
                    return result
                }
            }, encode: { $0 }, text: Self.print)
    }

    /// What init did to one repository.
    static func print(_ result: InitOperation.Result) {
        let i = result.info
        switch result.outcome {
        case .created:
            Output.line(
                "created repository \(result.location) for cluster \(i.systemIdentifier) (PostgreSQL \(i.pgMajor))")
        case .existing:
            Output.line(
                "repository \(result.location) already belongs to this cluster (\(i.systemIdentifier)); nothing to do")
        case .repaired:
            Output.line(
                "repository \(result.location) belongs to this cluster; rewrote a missing or damaged copy of cairn.json"
            )
        }
    }
}
