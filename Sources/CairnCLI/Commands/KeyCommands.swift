import ArgumentParser
import CairnBase
import CairnCore
import CairnStorage
import Foundation

/// `cairn key`: the master key of an encrypted repository.
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Create, rotate and inspect the master key of an encrypted repository.",
        discussion: """
            An encrypted repository (repository.encryption in cairn.yaml) stores every object with AES-256-GCM under a \
            random per-object key, wrapped by a data key from keyring.json, which the master key wraps. The master key \
            stays outside the repository: lose it and the backups cannot be read. See runbooks/encryption-keys.md.
            """,
        subcommands: [Generate.self, Rotate.self, Status.self])

    /// `cairn key generate --output FILE`.
    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new random master key to a file (mode 0600; never replaces a file).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "The key file to create.") var output: String

        func run() async throws {
            let key = try MasterKey.generate(into: output)
            Output.line(
                "wrote a new master key to \(output) (id \(key.id)); keep a copy outside the repository: without it the backups cannot be read"
            )
        }
    }

    /// `cairn key rotate --new-key-file FILE | --new-key-env VAR`.
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap the repository's data keys under a new master key (no data is rewritten).",
            discussion: """
                Uses the master key configured in cairn.yaml as the old key. Adds a fresh data key for objects written \
                from now on. Safe to interrupt and rerun. Afterwards point repository.encryption at the new key on every \
                host (the old key no longer opens the repository).
                """)
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "A file holding the new master key.") var newKeyFile: String?
        @Option(name: .long, help: "An environment variable holding the new master key.") var newKeyEnv: String?
        @Flag(name: .long, help: "Print the result as JSON.") var json = false
        @OptionGroup var lock: JobLockOptions

        func validate() throws {
            guard (newKeyFile == nil) != (newKeyEnv == nil) else {
                throw ValidationError("pass exactly one of --new-key-file or --new-key-env")
            }
        }

        func run() async throws {
            let ctx = try AppContext.load(global)
            guard let old = try ctx.masterKey() else {
                throw CairnError(
                    .configInvalid, "repository.encryption is not configured in \(ctx.absoluteConfigPath)",
                    hint:
                        "configure the repository's current master key there first; only an encrypted repository has keys to rotate"
                )
            }
            var warnings: [String] = []
            let new =
                try newKeyFile.map { try MasterKey.load(file: $0, warnings: &warnings) }
                ?? MasterKey.load(variable: newKeyEnv!, environment: ctx.environment)
            for w in warnings { Output.stderr("warning: \(w)") }
            let base = try ctx.makeDriver()
            let result = try await lock.withLock("key", repo: EncryptedRepository(base: base, master: old)) {
                try await Blocking.run { try KeyRotation.run(repo: base, old: old, new: new, now: Date()) }
            }
            if json { return try Output.json(result) }
            Output.line(
                "re-wrapped \(result.rewrapped) data key(s) of \(result.location) under master key \(result.newMasterKeyId) (was \(result.oldMasterKeyId))\(result.resumed ? ", completing an interrupted rotation" : "")"
            )
            Output.line(
                "new objects use data key \(result.currentDataKey); now set repository.encryption to the new key (\(new.source)) on every host"
            )
        }
    }

    /// `cairn key status`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the configured master key's id and the repository's keyring.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Print as JSON.") var json = false

        struct Twin: Encodable {
            var object: String
            var masterKeyId: String?
            var dataKeys: [String]
            var current: String?
            var updated: String?
            var problem: String?
            enum CodingKeys: String, CodingKey {
                case object, current, updated, problem
                case masterKeyId = "master_key_id"
                case dataKeys = "data_keys"
            }
        }

        struct View: Encodable {
            var location: String
            var configuredKeyId: String?
            var configuredKeySource: String?
            var opens: Bool
            var keyring: [Twin]
            enum CodingKeys: String, CodingKey {
                case location, opens, keyring
                case configuredKeyId = "configured_master_key_id"
                case configuredKeySource = "configured_master_key_source"
            }
        }

        func run() async throws {
            let ctx = try AppContext.load(global)
            let master = try ctx.masterKey()
            let base = try ctx.makeDriver()
            let view = try await Blocking.run { () -> View in
                var twins: [Twin] = []
                for key in [Keyring.key, Keyring.copyKey] {
                    var t = Twin(object: key, dataKeys: [])
                    do {
                        if let b = try base.getBytesIfExists(key) {
                            let k = try SealedDocument.open(Keyring.self, from: b, what: key)
                            t.masterKeyId = k.masterKeyId
                            t.dataKeys = k.keys.map(\.id)
                            t.current = k.current
                            t.updated = Timestamp.format(k.updated)
                        } else {
                            t.problem = "missing"
                        }
                    } catch {
                        t.problem = describeError(error).message
                    }
                    twins.append(t)
                }
                var opens = false
                if let master { opens = (try? Keyring.load(from: base, master: master)) != nil }
                return View(
                    location: base.location, configuredKeyId: master?.id, configuredKeySource: master?.source,
                    opens: opens, keyring: twins)
            }
            if json { return try Output.json(view) }
            Output.line("repository: \(view.location)")
            Output.line(
                "configured master key: \(view.configuredKeyId.map { "\($0) (\(view.configuredKeySource!))" } ?? "none (repository.encryption not set)")"
            )
            for t in view.keyring {
                if let p = t.problem { Output.line("\(t.object): \(p)"); continue }
                Output.line(
                    "\(t.object): wrapped by master key \(t.masterKeyId!), data keys \(t.dataKeys.joined(separator: ", ")) (current \(t.current!)), updated \(t.updated!)"
                )
            }
            if master != nil {
                Output.line(
                    view.opens
                        ? "the configured master key opens the keyring"
                        : "the configured master key does NOT open the keyring")
            }
            if master != nil && !view.opens {
                throw CairnError(
                    .keyMismatch,
                    "the configured master key (id \(master!.id)) does not open the keyring of \(view.location)",
                    hint: "configure the master key this repository was created or last rotated with")
            }
        }
    }
}
