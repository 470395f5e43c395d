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
            "Reads the cluster's system identifier and version over libpq. Refuses a repository that belongs to another cluster."
    )

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() async throws {
        let ctx = try AppContext.load(global)
        let result = try await Blocking.run {
            let conn = try ctx.connect()
            let cluster = try ClusterInfo.read(conn)
            let repo = try ctx.makeRepository()
            let result = try InitOperation.run(repo: repo, cluster: cluster, clock: SystemClock())
            // The configured cluster's timeline starts production's recorded history.
            if let tli = try TimelineWitness.currentTimeline(conn) {
                try TimelineWitness.confirmProduction(tli, repo: repo, clock: SystemClock(), decidedBy: "init")
            }
            return result
        }
        if json { return try Output.json(result) }
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
