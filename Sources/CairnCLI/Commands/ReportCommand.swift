import ArgumentParser
import CairnBase
import CairnCore
import CairnStorage
import Foundation

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the monthly restore-verification report (Markdown, self-contained HTML, JSON).",
        discussion: """
            Backups taken and failed, recoverable-window coverage for each day, WAL gaps, verify results, every drill with \
            its verdict and RTO, and a one-line conclusion. The files go to reports/<month>/ in the repository and, with \
            --output, to a local folder.

            With several repositories, each repository gets its own report, judged on its own evidence (its backups, \
            WAL, verify runs and the drills recorded in it) and written into it: an auditor signs off each copy, and \
            a copy no drill or verify has proven is NOT VERIFIED. With --output, each goes to DIR/<name>/. The text \
            gives each conclusion under a heading `repository NAME (location)`; --json prints {"repositories": \
            [{"name", "location", "result": <report model>, "error"}]}.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The month, YYYY-MM (default: the previous month).") var month: String?
    @Option(name: .long, help: "Also write report.md, report.html and report.json into this folder.") var output:
        String?
    @Flag(name: .long, help: "Print the report model as JSON.") var json = false
    @OptionGroup var lock: JobLockOptions

    func validate() throws {
        if let m = month, ReportBuilder.interval(m) == nil {
            throw ValidationError("--month must be YYYY-MM, e.g. 2026-11")
        }
    }

    static func previousMonth(_ now: Date) -> String {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        let d = c.date(byAdding: .month, value: -1, to: now)!
        return String(format: "%04d-%02d", c.component(.year, from: d), c.component(.month, from: d))
    }

    func run() async throws {
        let ctx = try AppContext.load(global)
        let set = try ctx.makeRepositories()
        let month = self.month ?? Self.previousMonth(Date())
        let output = self.output
        try await EachRepository(set: set, json: json).run(
            { m in
                try await lock.withLock("report", repo: m.repo) {
                    try await Self.report(
                        ctx, m.repo, month: month, output: output.map { set.isSeveral ? $0 + "/" + m.name : $0 })
                }
            },
            encode: \.model,
            text: { r in
                Output.line(r.model.conclusion)
                Output.line(
                    "written to \(r.location)/reports/\(month)/report.{md,html,json}\(r.output.map { " and \($0)/" } ?? "")"
                )
            })
    }

    /// One repository's report: built from its own catalog, jobs, drills and verify runs, written into it (and
    /// into `output`), the job recorded there.
    static func report(
        _ ctx: AppContext, _ repo: any Repository, month: String, output: String?
    ) async throws -> (model: ReportModel, location: String, output: String?) {
        let started = Date()
        let model = try await Blocking.run { () -> ReportModel in
            let catalog = try Catalog.load(from: repo)
            return try ReportBuilder.build(
                month: month, catalog: catalog, jobs: try JobRecord.load(month: month, from: repo),
                drills: try DrillRecord.loadAll(from: repo), verifies: try VerifyOperation.loadRuns(from: repo),
                location: repo.location, now: Date(), requirements: ctx.config.drills.verification)
        }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        let files: [(String, [UInt8])] = [
            ("report.md", Array(MarkdownReport.render(model).utf8)),
            ("report.html", Array(HTMLReport.render(model).utf8)),
            ("report.json", Array(try e.encode(model)))
        ]
        try await Blocking.run {
            for (name, bytes) in files {
                try repo.put(Layout.reportKey(month: month, file: name), bytes, options: .overwrite)
            }
        }
        if let output { try write(files, to: output) }
        await JobRecord.record(repo, job: "report", started: started, subject: month)
        return (model, repo.location, output)
    }

    /// Writes the report's files into a local folder.
    static func write(_ files: [(String, [UInt8])], to output: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: output + "/" + name)) }
        } catch {
            throw CairnError(.localIO, "cannot write the report into \(output): \(error.localizedDescription)")
        }
    }
}
