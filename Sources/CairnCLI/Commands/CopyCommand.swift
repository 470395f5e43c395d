import ArgumentParser
import CairnBase
import CairnCore
import Foundation

/// `cairn copy`: fills a new or lagging repository from another, without reading PostgreSQL.
struct CopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy backups and WAL from one repository into another that lacks them.",
        discussion: """
            Copies the WAL files, timeline records and committed backups the target lacks (or only --backup ID), \
            each backup committed in the target by its own manifest after its objects were copied and checked \
            against the source's manifest. A target without cairn.json is initialised for the source's cluster (it \
            must be empty); a target of another cluster is refused. Objects are decrypted with the source's key and \
            encrypted with the target's. Without --to, every other repository is caught up from --from (default: \
            the first in cairn.yaml). Safe to interrupt and rerun.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The repository to copy from (default: the first in cairn.yaml).") var from: String?
    @Option(name: .long, help: "The repository to fill (repeatable; default: every other one).") var to: [String] = []
    @Option(name: .long, help: "Copy only this backup (repeatable).") var backup: [String] = []
    @Flag(name: .long, help: "Say what would be copied; write nothing.") var dryRun = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() async throws {
        let ctx = try AppContext.load(global)
        let repos = try ctx.makeRepositories()
        let (source, targets) = try choose(repos)
        let options = CopyOperation.Options(
            backups: backup.isEmpty ? nil : backup, dryRun: dryRun, parallelism: ctx.config.limits.parallelism)
        var results: [CopyOperation.Result] = []
        for target in targets {
            let r = try await Blocking.run { try CopyOperation.run(from: source, to: target, options: options) }
            results.append(r)
            if !json { print(r) }
        }
        if json { try Output.json(results) }
    }

    /// The source and the targets the options name.
    func choose(_ repos: RepositorySet) throws -> (RepositorySet.Member, [RepositorySet.Member]) {
        func named(_ name: String) throws -> RepositorySet.Member {
            guard let m = repos.member(name) else {
                throw CairnError(
                    .usage, "no repository named \(name)",
                    hint:
                        "configured: \(repos.members.map(\.name).joined(separator: ", ")) (repositories: in cairn.yaml)"
                )
            }
            return m
        }
        let source = try from.map(named) ?? repos.primary
        let targets = try to.isEmpty ? repos.members.filter { $0.name != source.name } : to.map(named)
        guard !targets.isEmpty else {
            throw CairnError(
                .usage, "nothing to copy into: only one repository is configured",
                hint: "list several under repositories: in cairn.yaml (see README, Several repositories)")
        }
        if let same = targets.first(where: { $0.name == source.name }) {
            throw CairnError(
                .usage, "repository \(same.name) cannot be copied into itself", hint: "name another with --to")
        }
        return (source, targets)
    }

    func print(_ r: CopyOperation.Result) {
        let verb = r.dryRun ? "would copy" : "copied"
        Output.line(
            "\(r.from) → \(r.to): \(verb) \(r.backups.count) backup(s)\(r.backups.isEmpty ? "" : " (" + r.backups.joined(separator: ", ") + ")"), \(r.walFiles) WAL file(s), \(r.records) timeline record(s)\(r.dryRun ? "" : ", " + Units.formatBytes(r.bytes))\(r.initialized ? "; initialised \(r.to) for the cluster" : "")"
        )
    }
}
