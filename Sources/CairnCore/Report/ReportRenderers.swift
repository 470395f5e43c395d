import CairnBase
import Foundation

/// Renders the report as Markdown.
public enum MarkdownReport {
    public static func render(_ r: ReportModel) -> String {
        var s = "# Restore-verification report \(r.month)\n\n"
        s += "**\(r.conclusion)**\n\n"
        s +=
            "Repository `\(r.repository)`, cluster \(r.systemIdentifier). Generated \(Timestamp.format(r.generated)) by cairn \(r.cairnVersion).\n\n"
        s += "## Restore drills\n\n"
        if r.drills.isEmpty {
            s += "No drill ran this month.\n\n"
        } else {
            s +=
                "| Drill | Time | Backup | Target | Verdict | RTO | Restore | WAL replay | Checks |\n|---|---|---|---|---|---|---|---|---|\n"
            for d in r.drills {
                s +=
                    "| \(d.id) | \(Timestamp.format(d.time)) | \(d.backup) (\(d.kind)) | \(d.target) | \(d.verdict.uppercased())\(d.failedCheck.map { ": \($0)" } ?? "") | "
                    + "\(Units.formatDuration(d.rtoSeconds)) | \(Units.formatDuration(d.restoreSeconds)) | \(Units.formatDuration(d.replaySeconds)) | \(Units.formatDuration(d.checksSeconds)) |\n"
            }
            s += "\n"
        }
        s += "## Backups\n\n"
        if r.backups.isEmpty {
            s += "No backup was taken this month.\n\n"
        } else {
            s += "| Backup | Type | Time | Outcome | Stored | In repository |\n|---|---|---|---|---|---|\n"
            for b in r.backups {
                s +=
                    "| \(b.id) | \(b.kind) | \(Timestamp.format(b.time)) | \(b.outcome)\(b.error.map { ": \($0)" } ?? "") | "
                    + "\(b.storedBytes.map { Units.formatBytes($0) } ?? "-") | \(b.inRepository ? "yes" : "no") |\n"
            }
            s += "\n"
        }
        s += "## Recoverable-window coverage by day\n\n| Day | Coverage |\n|---|---|\n"
        for d in r.days { s += "| \(d.date) | \(MarkdownReport.coverage(d)) |\n" }
        s += "\n## WAL archive\n\n"
        s += r.walGaps.isEmpty ? "No gaps.\n\n" : r.walGaps.map { "- missing: \($0)\n" }.joined() + "\n"
        s += "## Repository verification\n\n"
        if r.verifies.isEmpty {
            s += "No `cairn verify` ran this month.\n\n"
        } else {
            s += "| Time | Result | Objects read | Problems | Full |\n|---|---|---|---|---|\n"
            for v in r.verifies {
                s +=
                    "| \(Timestamp.format(v.time)) | \(v.ok ? "OK" : "PROBLEMS") | \(v.objectsChecked) | \(v.problems) | \(v.full ? "yes" : "no") |\n"
            }
            s += "\n"
        }
        s += "---\n\nReviewed and accepted: ______________________  Date: __________\n"
        return s
    }

    /// A day's coverage cell.
    static func coverage(_ d: ReportModel.Day) -> String {
        switch d.state {
        case .beforeRepository: return "before the repository (not counted)"
        case .notOver: return "not over yet"
        case .measured: return String(format: "%.1f %%", (d.coverage ?? 0) * 100)
        }
    }
}

/// Renders the report as one self-contained HTML page (inline CSS and SVG charts: readable offline).
public enum HTMLReport {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    public static func render(_ r: ReportModel) -> String {
        head(r) + drillsSection(r) + backupsSection(r) + coverageSection(r) + walSection(r) + verifySection(r)
            + "<footer>Reviewed and accepted: ______________________ &nbsp; Date: __________</footer></body></html>\n"
    }

    /// The page up to the drills: style, title, conclusion, repository, and the drills' heading.
    static func head(_ r: ReportModel) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Restore-verification report \(esc(r.month))</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1000px; color: #1d2330; }
        h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #dde; padding-bottom: .2em; }
        .conclusion { font-size: 1.15em; padding: .8em 1em; border-radius: 6px; }
        .ok { background: #e6f4ea; border: 1px solid #34a853; } .bad { background: #fce8e6; border: 1px solid #d93025; }
        table { border-collapse: collapse; width: 100%; font-size: .92em; } th, td { border: 1px solid #dde; padding: .3em .5em; text-align: left; }
        th { background: #f3f4f8; } td.pass { color: #137333; font-weight: bold; } td.fail { color: #c5221f; font-weight: bold; }
        .days { display: grid; grid-template-columns: repeat(7, 1fr); gap: 4px; } .day { padding: .4em; border-radius: 4px; font-size: .85em; text-align: center; }
        footer { margin-top: 2.5em; color: #555; font-size: .9em; } svg text { font-size: 11px; fill: #333; }
        </style></head><body>
        <h1>Restore-verification report \(esc(r.month))</h1>
        <p class="conclusion \(r.verified ? "ok" : "bad")" id="conclusion">\(esc(r.conclusion))</p>
        <p>Repository <code>\(esc(r.repository))</code>, cluster \(esc(r.systemIdentifier)). Generated \(esc(Timestamp.format(r.generated))) by cairn \(esc(r.cairnVersion)).</p>
        <h2>Restore drills</h2>
        """
    }

    /// The drills (under the heading `head` ends with): an RTO chart and a table.
    static func drillsSection(_ r: ReportModel) -> String {
        var h = ""
        if r.drills.isEmpty {
            h += "<p>No drill ran this month.</p>"
        } else {
            h += rtoChart(r.drills)
            h +=
                "<table><tr><th>Drill</th><th>Time</th><th>Backup</th><th>Target</th><th>Verdict</th><th>RTO</th><th>Restore</th><th>WAL replay</th><th>Checks</th></tr>"
            for d in r.drills {
                h +=
                    "<tr><td>\(esc(d.id))</td><td>\(esc(Timestamp.format(d.time)))</td><td>\(esc(d.backup)) (\(esc(d.kind)))</td><td>\(esc(d.target))</td>"
                    + "<td class=\"\(d.verdict)\">\(esc(d.verdict.uppercased()))\(d.failedCheck.map { ": " + esc($0) } ?? "")</td>"
                    + "<td>\(Units.formatDuration(d.rtoSeconds))</td><td>\(Units.formatDuration(d.restoreSeconds))</td>"
                    + "<td>\(Units.formatDuration(d.replaySeconds))</td><td>\(Units.formatDuration(d.checksSeconds))</td></tr>"
            }
            h += "</table>"
        }
        return h
    }

    /// The month's backups: a size chart and a table.
    static func backupsSection(_ r: ReportModel) -> String {
        var h = "<h2>Backups</h2>"
        if r.backups.isEmpty {
            h += "<p>No backup was taken this month.</p>"
        } else {
            h += sizeChart(r.backups)
            h +=
                "<table><tr><th>Backup</th><th>Type</th><th>Time</th><th>Outcome</th><th>Stored</th><th>In repository</th></tr>"
            for b in r.backups {
                h +=
                    "<tr><td>\(esc(b.id))</td><td>\(esc(b.kind))</td><td>\(esc(Timestamp.format(b.time)))</td>"
                    + "<td class=\"\(b.outcome == "ok" ? "pass" : "fail")\">\(esc(b.outcome))\(b.error.map { ": " + esc($0) } ?? "")</td>"
                    + "<td>\(b.storedBytes.map { Units.formatBytes($0) } ?? "-")</td><td>\(b.inRepository ? "yes" : "no")</td></tr>"
            }
            h += "</table>"
        }
        return h
    }

    /// The recoverable window's coverage, day by day.
    static func coverageSection(_ r: ReportModel) -> String {
        var h = "<h2>Recoverable-window coverage by day</h2><div class=\"days\">"
        for d in r.days {
            let (bg, text): (String, String)
            switch d.state {
            case .beforeRepository: (bg, text) = ("#f3f4f8", "before the repository")
            case .notOver: (bg, text) = ("#eceff1", "not over yet")
            case .measured:
                let c = d.coverage ?? 0
                (bg, text) = (c >= 0.999 ? "#ceead6" : c > 0 ? "#fde293" : "#f6aea9", String(format: "%.0f%%", c * 100))
            }
            h +=
                "<div class=\"day\" style=\"background:\(bg)\">\(esc(String(d.date.suffix(5))))<br><b>\(text)</b></div>"
        }
        h += "</div>"
        return h
    }

    /// The WAL archive's gaps.
    static func walSection(_ r: ReportModel) -> String {
        var h = "<h2>WAL archive</h2>"
        h +=
            r.walGaps.isEmpty
            ? "<p>No gaps.</p>" : "<ul>" + r.walGaps.map { "<li>missing: \(esc($0))</li>" }.joined() + "</ul>"
        return h
    }

    /// The month's `cairn verify` runs.
    static func verifySection(_ r: ReportModel) -> String {
        var h = "<h2>Repository verification</h2>"
        if r.verifies.isEmpty {
            h += "<p>No <code>cairn verify</code> ran this month.</p>"
        } else {
            h += "<table><tr><th>Time</th><th>Result</th><th>Objects read</th><th>Problems</th><th>Full</th></tr>"
            for v in r.verifies {
                h +=
                    "<tr><td>\(esc(Timestamp.format(v.time)))</td><td class=\"\(v.ok ? "pass" : "fail")\">\(v.ok ? "OK" : "PROBLEMS")</td>"
                    + "<td>\(v.objectsChecked)</td><td>\(v.problems)</td><td>\(v.full ? "yes" : "no")</td></tr>"
            }
            h += "</table>"
        }
        return h
    }

    /// Stacked bars (restore, replay, checks) per drill, with the verdict under each bar.
    static func rtoChart(_ drills: [ReportModel.Drill]) -> String {
        let w = 900.0, h = 220.0, left = 50.0, bottom = 40.0
        let maxRTO = max(drills.map(\.rtoSeconds).max() ?? 1, 0.001)
        let bw = min(60, (w - left) / Double(drills.count) * 0.6)
        var s = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"Drill RTO\">"
        s += "<text x=\"0\" y=\"12\">RTO per drill, longest \(Units.formatDuration(maxRTO))</text>"
        // The legend: which colour is which phase.
        for (n, (name, color)) in rtoPhases.enumerated() {
            let x = 520.0 + Double(n) * 120
            s +=
                "<g class=\"legend\"><rect x=\"\(f(x))\" y=\"2\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
                + "<text x=\"\(f(x + 16))\" y=\"12\">\(name)</text></g>"
        }
        for (i, d) in drills.enumerated() {
            let x = left + (Double(i) + 0.5) * (w - left) / Double(drills.count) - bw / 2
            var y = h - bottom
            for (v, color) in zip([d.restoreSeconds, d.replaySeconds, d.checksSeconds], rtoPhases.map(\.1)) {
                let bh = v / maxRTO * (h - bottom - 30)
                y -= bh
                s += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(bw))\" height=\"\(f(bh))\" fill=\"\(color)\"/>"
            }
            s += "<text x=\"\(f(x))\" y=\"\(f(y - 4))\">\(Units.formatDuration(d.rtoSeconds))</text>"
            s +=
                "<text x=\"\(f(x))\" y=\"\(f(h - bottom + 14))\" fill=\"\(d.verdict == "pass" ? "#137333" : "#c5221f")\">\(d.verdict.uppercased())</text>"
            s += "<text x=\"\(f(x))\" y=\"\(f(h - bottom + 28))\">\(esc(String(d.id.prefix(8).suffix(4))))</text>"
        }
        return s + "</svg>"
    }

    /// The phases of a drill's RTO, bottom to top, with their colours.
    static let rtoPhases = [("restore", "#4285f4"), ("WAL replay", "#fbbc04"), ("checks", "#34a853")]

    /// The size chart's colour for each backup kind, and for a failed backup.
    static let sizeKinds = [
        ("full", "#4285f4"), ("incr/diff", "#8ab4f8"), ("logical", "#a142f4"), ("failed", "#d93025")
    ]

    static func sizeColour(_ kind: String) -> String {
        switch kind {
        case "logical": sizeKinds[2].1
        case "incr", "diff": sizeKinds[1].1
        default: sizeKinds[0].1
        }
    }

    /// Bars of stored size per backup.
    static func sizeChart(_ backups: [ReportModel.Backup]) -> String {
        let w = 900.0, h = 180.0, left = 50.0, bottom = 30.0
        let sizes = backups.map { Double($0.storedBytes ?? 0) }
        let maxSize = max(sizes.max() ?? 1, 1)
        let bw = min(40, (w - left) / Double(backups.count) * 0.6)
        var s = "<svg width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"Backup sizes\">"
        s += "<text x=\"0\" y=\"12\">Stored size per backup, largest \(Units.formatBytes(Int64(maxSize)))</text>"
        for (i, (name, colour)) in sizeKinds.enumerated() {
            s += "<rect x=\"\(f(w - 330 + Double(i) * 85))\" y=\"3\" width=\"10\" height=\"10\" fill=\"\(colour)\"/>"
            s += "<text x=\"\(f(w - 316 + Double(i) * 85))\" y=\"12\">\(name)</text>"
        }
        for (i, b) in backups.enumerated() {
            let x = left + (Double(i) + 0.5) * (w - left) / Double(backups.count) - bw / 2
            let bh = sizes[i] / maxSize * (h - bottom - 25)
            s +=
                "<rect x=\"\(f(x))\" y=\"\(f(h - bottom - bh))\" width=\"\(f(bw))\" height=\"\(f(bh))\" fill=\"\(b.outcome == "ok" ? sizeColour(b.kind) : "#d93025")\"/>"
            if backups.count <= 40 {
                s += "<text x=\"\(f(x))\" y=\"\(f(h - bottom + 14))\">\(esc(String(b.id.prefix(8).suffix(2))))</text>"
            }
        }
        return s + "</svg>"
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
}
