import Foundation
import TestSupport
import Testing

/// What can be checked of the packaging without a Docker engine or a booted systemd: the Dockerfile's runtime
/// stage installs packages that exist and that provide every library and PostgreSQL tool the binary needs; the
/// systemd unit passes `systemd-analyze verify`; the example crontab is what `cairn schedule print-crontab` prints.
@Suite struct PackagingTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        .standardized.path

    static func sh(_ command: String) throws -> ProcessResult { try Run.program("/bin/bash", ["-c", command]) }

    /// The packages the runtime stage (after the last FROM) installs with apt-get.
    static func runtimePackages(_ dockerfile: String) -> Set<String> {
        let runtime = dockerfile.components(separatedBy: "\nFROM ").last ?? ""
        let joined = runtime.replacingOccurrences(of: "\\\n", with: " ")
        var packages = Set<String>()
        for line in joined.split(separator: "\n") where line.contains("apt-get install") {
            let after = line.components(separatedBy: "apt-get install").last ?? ""
            let words = (after.components(separatedBy: "&&").first ?? "").split(separator: " ").map(String.init)
            packages.formUnion(words.filter { !$0.hasPrefix("-") })
        }
        return packages
    }

    @Test func theDockerfileRuntimeStageHasWhatTheBinaryNeeds() throws {
        let dockerfile = try String(contentsOfFile: Self.root + "/Dockerfile", encoding: .utf8)
        #expect(dockerfile.components(separatedBy: "\nFROM ").count == 3 || dockerfile.hasPrefix("FROM"), "multi-stage")
        #expect(
            dockerfile.contains("--static-swift-stdlib"),
            "the Swift runtime is linked in, so the runtime stage needs no toolchain")
        #expect(dockerfile.contains("USER cairn") && !dockerfile.contains("USER root"))
        #expect(dockerfile.contains("CMD [\"daemon\"]"))
        let packages = Self.runtimePackages(dockerfile)
        #expect(packages.contains("libpq5") && packages.contains("postgresql-client-15"), "\(packages)")
        // Every package exists in Debian bookworm (this machine's release, and the image's base).
        #expect(try String(contentsOfFile: "/etc/os-release", encoding: .utf8).contains("bookworm"))
        for p in packages.sorted() {
            let r = try Self.sh("apt-cache policy \(p) | grep -q 'Candidate: [0-9]'")
            #expect(r.status == 0, "package \(p) does not exist in bookworm")
        }
        // Every shared library the binary links directly, except the Swift runtime (static in the image), and the
        // two it opens on first use (libpq, libcurl) come from an installed package, or from what
        // debian:bookworm-slim always has.
        let base: Set<String> = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g"]
        let needed = try Self.sh("readelf -d \(Run.cairnBinary) | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'")
            .stdout
            .split(separator: "\n").map(String.init)
        #expect(
            needed.contains("libzstd.so.1") && !needed.contains("libpq.so.5") && !needed.contains("libcurl.so.4"),
            "\(needed)")
        for lib in needed + ["libpq.so.5", "libcurl.so.4"]
        where !lib.hasPrefix("libswift") && !lib.hasPrefix("libFoundation")
            && !["libdispatch.so", "libBlocksRuntime.so"].contains(lib)
        {
            // dpkg knows a file by the path its package ships, /lib or /usr/lib (merged /usr): try both.
            let owner = try Self.sh(
                """
                p=$(ldconfig -p | awk -v l=\(lib) '$1 == l && /x86-64/ {print $NF; exit}'); r=$(realpath "$p")
                for c in "$p" "$r" "/usr$p" "${p#/usr}" "/usr$r" "${r#/usr}"; do dpkg -S "$c" 2>/dev/null && break; done | cut -d: -f1 | head -1
                """
            ).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!owner.isEmpty, "no package provides \(lib)")
            #expect(
                packages.contains(owner) || base.contains(owner),
                "\(lib) comes from \(owner), which the runtime stage does not install")
        }
        // Every PostgreSQL program cairn runs (backups, restores, drills) is installed.
        for tool in [
            "pg_dump", "pg_dumpall", "pg_restore", "pg_verifybackup", "pg_amcheck", "psql", "initdb", "pg_ctl",
            "postgres"
        ] {
            let owner = try Self.sh("dpkg -S /usr/lib/postgresql/15/bin/\(tool) | cut -d: -f1").stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(packages.contains(owner), "\(tool) comes from \(owner), which the runtime stage does not install")
        }
    }

    @Test func theSystemdUnitVerifies() throws {
        let unit = try String(contentsOfFile: Self.root + "/packaging/cairn.service", encoding: .utf8)
        #expect(
            unit.contains("ExecStart=/usr/local/bin/cairn daemon") && unit.contains("User=postgres")
                && unit.contains("KillSignal=SIGTERM"))
        let dir = NSTemporaryDirectory() + "cairn-unit-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try unit.replacingOccurrences(of: "/usr/local/bin/cairn", with: Run.cairnBinary).write(
            toFile: dir + "/cairn.service", atomically: true, encoding: .utf8)
        let r = try Self.sh("systemd-analyze verify \(dir)/cairn.service")
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stdout)\(r.stderr)")
    }

    @Test func theExampleCrontabIsWhatTheScheduleGives() throws {
        let dir = NSTemporaryDirectory() + "cairn-cron-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try
            "cluster:\n  connection: \"host=/var/run/postgresql user=postgres dbname=postgres\"\nrepository:\n  type: local\n  path: \(dir)/repo\n"
            .write(toFile: dir + "/cairn.yaml", atomically: true, encoding: .utf8)
        let r = try Run.program(
            Run.cairnBinary,
            [
                "--config", dir + "/cairn.yaml", "schedule", "print-crontab", "--schedule",
                Self.root + "/policies/schedule.yaml"
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let generated = r.stdout
            .replacingOccurrences(
                of: URL(fileURLWithPath: Run.cairnBinary).resolvingSymlinksInPath().path, with: "/usr/local/bin/cairn"
            )
            .replacingOccurrences(of: Run.cairnBinary, with: "/usr/local/bin/cairn").replacingOccurrences(
                of: dir + "/cairn.yaml", with: "/etc/cairn/cairn.yaml")
        let example = try String(contentsOfFile: Self.root + "/packaging/crontab.example", encoding: .utf8)
        #expect(
            generated == example,
            "packaging/crontab.example is out of date; regenerate it with cairn schedule print-crontab:\n\(generated)")
        // cron would cut a command at an unescaped %.
        for line in example.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(!line.replacingOccurrences(of: "\\%", with: "").contains("%"))
        }
    }
}
