import ArgumentParser
import CairnBase
import CairnCore
import CairnStorage
import Foundation

struct ExpireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expire",
        abstract: "Delete what the retention policy no longer needs, keeping the recovery window restorable.",
        discussion: """
            Keeps the newest full backup consistent by the start of the recovery window, every later backup, all WAL \
            from that backup's start onward on the path to the present timeline, the WAL kept backups need, pinned \
            backups and the newest min_full_backups; deletes the rest, each expired backup's manifest first. \
            --dry-run prints the plan with a reason for every item; --json gives every object kept or deleted. With \
            several repositories, retention runs in each in turn under its own lock, its section under a heading \
            `repository NAME (location)`; --json then prints {"repositories": [{"name", "location", "result", \
            "error"}]}. One that fails is reported, the others are expired, and the command then fails.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "A retention policy file instead of the one in cairn.yaml.") var policy: String?
    @Flag(name: .long, help: "Print the plan and delete nothing.") var dryRun = false
    @Flag(name: .long, help: "Print the plan (and result) as JSON.") var json = false
    @OptionGroup var lock: JobLockOptions

    func run() async throws {
        let ctx = try AppContext.load(global)
        let policy = try self.policy.map(PolicyLoader.retention(file:)) ?? ctx.config.retention
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in try await lock.withLock("expire", repo: m.repo) { try await expire(m.repo, policy: policy) } },
            encode: { Outcome(plan: $0.plan, result: $0.result) },
            text: { Self.print($0.plan, $0.result, policy: policy) })
    }

    /// The plan, or what was deleted: JSON prints the result when there is one, else the plan.
    struct Outcome: Encodable {
        var plan: ExpirePlan
        var result: ExpireOperation.Result?

        func encode(to encoder: any Encoder) throws {
            if let result { try result.encode(to: encoder) } else { try plan.encode(to: encoder) }
        }
    }

    /// Plans and (unless --dry-run) applies retention in one repository, recording the job there.
    func expire(
        _ repo: any Repository, policy: RetentionPolicy
    ) async throws -> (
        plan: ExpirePlan, result: ExpireOperation.Result?
    ) {
        let dryRun = self.dryRun
        let started = Date()
        let plan: ExpirePlan, result: ExpireOperation.Result?
        do {
            (plan, result) = try await Blocking.run { () -> (ExpirePlan, ExpireOperation.Result?) in
                let catalog = try Catalog.load(from: repo)
                let plan = ExpirePlanner.plan(catalog, policy: policy, now: Date())
                if dryRun { return (plan, nil) }
                return (plan, try ExpireOperation.run(repo: repo, catalog: catalog, plan: plan, policy: policy))
            }
        } catch {
            if !dryRun { await JobRecord.record(repo, job: "expire", started: started, error: error) }
            throw error
        }
        if let result { await JobRecord.record(repo, job: "expire", started: started, bytes: result.deletedBytes) }
        return (plan, result)
    }

    /// One repository's plan (and result) as text.
    static func print(_ plan: ExpirePlan, _ result: ExpireOperation.Result?, policy: RetentionPolicy) {
        let dryRun = result == nil
        Output.line(
            "recovery window: \(Units.formatDuration(policy.recoveryWindow)), from \(Timestamp.format(plan.windowStart)); anchor backup: \(plan.anchor ?? "none")"
        )
        for w in plan.warnings { Output.line("WARNING: \(w)") }
        for d in plan.decisions where d.kind != "history" {
            let verb = d.action == .keep ? "keep  " : (dryRun ? "would delete" : "delete")
            Output.line("\(verb) \(d.kind) \(d.subject): \(d.reason)")
        }
        let histories = plan.decisions.filter { $0.kind == "history" }.count
        if histories > 0 { Output.line("keep   \(histories) timeline history file(s): always kept") }
        if let r = result {
            for l in r.locked { Output.line("kept under Object Lock: \(l)") }
            Output.line(
                "deleted \(r.deletedObjects) object(s), \(Units.formatBytes(r.deletedBytes))"
                    + (r.lockedObjects > 0
                        ? "; kept \(r.lockedObjects) object(s) under Object Lock, deleted by a later expire once their lock has passed"
                        : ""))
        } else {
            Output.line("dry run: would delete \(plan.deletions.count) object(s); nothing was deleted")
        }
    }
}

struct PinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin", abstract: "Keep a backup (and the WAL it needs) regardless of retention.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The backup id.") var id: String
    @Option(name: .long, help: "Why it is kept (shown by list and expire).") var reason: String
    @Flag(name: .long, help: "Print the pin as JSON.") var json = false

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--reason must say why the backup is kept")
        }
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        let (id, reason) = (self.id, self.reason)
        struct Result: Encodable { var backup: String; var pinned = true; var pin: Pin }
        // Pinned in every repository: each one's expire keeps it.
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in try await Blocking.run { try Pin.pin(id, reason: reason, repo: m.repo, clock: SystemClock()) } },
            encode: { Result(backup: id, pin: $0) }, text: { Output.line("pinned backup \(id): \($0.reason)") })
    }
}

struct UnpinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpin", abstract: "Let retention handle a pinned backup again.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The backup id.") var id: String
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() async throws {
        let ctx = try AppContext.load(global)
        let id = self.id
        struct Result: Encodable { var backup: String; var pinned = false }
        try await EachRepository(set: try ctx.makeRepositories(), json: json).run(
            { m in try await Blocking.run { try Pin.unpin(id, repo: m.repo) } }, encode: { Result(backup: id) },
            text: { Output.line("unpinned backup \(id)") })
    }
}
