import CairnBase
import Foundation

/// The recovery settings `cairn restore` writes into the restored `postgresql.auto.conf`: one marked block that
/// replaces an earlier one, with other lines setting the same recovery settings commented out, written atomically.
extension RestoreOperation {
    /// The comment lines around the settings block cairn writes into `postgresql.auto.conf`.
    static let blockBegin = "# BEGIN recovery settings of cairn restore (replaced by the next restore; do not edit)"
    static let blockEnd = "# END recovery settings of cairn restore"
    /// What an earlier cairn (before the markers) wrote as the block's first line.
    static let legacyBlockStart = "# Recovery settings written by cairn restore"
    /// The prefix of lines cairn comments out.
    static let removedPrefix = "# removed by cairn restore: "
    /// The recovery settings cairn manages: earlier lines setting them would change this restore.
    static let managedSettings: Set<String> = [
        "restore_command", "recovery_end_command", "archive_cleanup_command", "recovery_target", "recovery_target_name",
        "recovery_target_time", "recovery_target_xid", "recovery_target_lsn", "recovery_target_inclusive",
        "recovery_target_timeline", "recovery_target_action"
    ]

    /// Rewrites `postgresql.auto.conf` atomically with this restore's recovery settings and creates
    /// `recovery.signal` (a standby: `standby.signal`; the other one is removed).
    static func writeRecoverySettings(root: String, plan: RecoveryPlan, options: Options, clock: any WallClock) throws {
        var settings =
            options.standby
            ? standbySettings(
                plan.settings, primaryConninfo: options.primaryConninfo, primarySlotName: options.primarySlotName)
            : plan.settings
        if let end = options.recoveryEndCommand { settings.append(.init(name: "recovery_end_command", value: end)) }
        if options.archiveOff { settings.append(.init(name: "archive_mode", value: "off")) }
        let conf = root + "/postgresql.auto.conf"
        let existing = (try? String(contentsOfFile: conf, encoding: .utf8)) ?? ""
        let what = options.standby ? "a standby" : "target \(plan.target)"
        let header = "# written at \(Timestamp.format(clock.now())): backup \(plan.backupId), \(what)"
        let text = rewriteAutoConf(existing, header: header, settings: settings, archiveOff: options.archiveOff)
        try replaceFile(conf, with: text)
        unlink(root + "/" + (options.standby ? "recovery.signal" : "standby.signal"))
        try writeFile(root + (options.standby ? "/standby.signal" : "/recovery.signal")) { _ in }
    }

    /// A standby's settings: the plan's `restore_command` (of `planned`, the plan's settings), `primary_conninfo`
    /// and `primary_slot_name` when given, and `recovery_target_timeline = 'latest'` (a standby follows its
    /// primary's promotions); no recovery target.
    public static func standbySettings(
        _ planned: [RecoveryPlan.Setting], primaryConninfo: String?, primarySlotName: String? = nil
    ) -> [RecoveryPlan.Setting] {
        var settings = planned.filter { $0.name == "restore_command" }
        if let primaryConninfo { settings.append(.init(name: "primary_conninfo", value: primaryConninfo)) }
        if let primarySlotName { settings.append(.init(name: "primary_slot_name", value: primarySlotName)) }
        settings.append(.init(name: "recovery_target_timeline", value: "latest"))
        return settings
    }

    /// `postgresql.auto.conf` text with `settings` as its one cairn block: an earlier cairn block is dropped, every
    /// other line that sets a managed recovery setting (and `archive_mode` when `archiveOff`) is commented out
    /// with ``removedPrefix``, the rest is kept as it is, and the new block is appended between ``blockBegin`` and
    /// ``blockEnd``.
    static func rewriteAutoConf(
        _ existing: String, header: String, settings: [RecoveryPlan.Setting], archiveOff: Bool
    ) -> String {
        var managed = managedSettings.union(settings.map { $0.name.lowercased() })
        if archiveOff { managed.insert("archive_mode") }
        var lines = dropCairnBlocks(existing.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        while lines.last?.isEmpty == true { lines.removeLast() }
        lines = lines.map { line in
            settingName(line).map { managed.contains($0) } == true ? removedPrefix + line : line
        }
        lines += [blockBegin, header]
        // PostgreSQL's configuration parser reads backslash escapes inside quotes: double them, as ALTER SYSTEM does.
        for s in settings {
            lines.append(
                "\(s.name) = '\(s.value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''"))'"
            )
        }
        lines.append(blockEnd)
        return lines.joined(separator: "\n") + "\n"
    }

    /// `lines` without the blocks an earlier cairn restore wrote: from ``blockBegin`` to ``blockEnd`` (a begin
    /// marker without an end loses only its own line), and the first line of an older unmarked block (its
    /// settings are managed ones, commented out afterwards).
    static func dropCairnBlocks(_ lines: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < lines.count {
            let line = lines[i].trimmingCharacters(in: .whitespaces)
            if line == blockBegin,
                let end = lines[(i + 1)...].firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == blockEnd })
            {
                i = end + 1
                continue
            }
            if line != blockBegin && line != blockEnd && !line.hasPrefix(legacyBlockStart) { out.append(lines[i]) }
            i += 1
        }
        return out
    }

    /// The lower-cased name of the setting a configuration line sets (`name = value` or `name value`), or nil for
    /// comments, blank lines and directives without a value.
    static func settingName(_ line: String) -> String? {
        let t = line.trimmingCharacters(in: .whitespaces)
        guard let first = t.first, first.isLetter || first == "_" else { return nil }
        let name = t.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }
        let rest = t.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
        return rest.isEmpty ? nil : name.lowercased()
    }

    /// Replaces `path` with `text` atomically and durably: a temporary file, fsynced, renamed over it, and the
    /// directory fsynced.
    static func replaceFile(_ path: String, with text: String) throws {
        let tmp = path + ".cairn-tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CairnError(.localIO, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Array(text.utf8).withUnsafeBytes { try FileIO.writeAll(fd, $0) }
        guard fsync(fd) == 0, rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw CairnError(.localIO, "cannot replace \(path): \(reason)")
        }
        let dfd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}
