import CairnBase
import Crypto
import Foundation

/// The key-encryption key an operator keeps outside the repository (a file or an environment variable): 32 random
/// bytes written as base64 (44 characters, what `cairn key generate` writes) or 64 hex digits.
///
/// It only wraps the repository's data keys (``Keyring``); it never encrypts data itself, so replacing it
/// (`cairn key rotate`) rewrites one small object. Its value never appears in a message: ``id`` names it.
public struct MasterKey: Sendable {
    private let bytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: bytes) }
    /// Where it came from, for messages (`file /etc/cairn/master.key`, `environment variable CAIRN_MASTER_KEY`).
    public let source: String

    /// A key from its raw 32 bytes.
    public init(bytes: [UInt8], source: String) throws {
        guard bytes.count == 32 else {
            throw CairnError(
                .configInvalid, "the master key in \(source) has \(bytes.count) bytes, not 32",
                hint: "create one with `cairn key generate --output FILE`")
        }
        self.bytes = bytes
        self.source = source
    }

    /// A fresh random key.
    public static func generate() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// A non-secret fingerprint (16 hex digits of HMAC-SHA256(key, "cairn master key id")) that tells keys apart.
    public var id: String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: Array("cairn master key id".utf8), using: key).prefix(8))
    }

    /// Parses the text of a key file or variable (surrounding white space ignored).
    public static func parse(_ text: String, source: String) throws -> MasterKey {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.count == 64, let b = Hex.decode(t) { return try MasterKey(bytes: b, source: source) }
        if let d = Data(base64Encoded: t), d.count == 32 { return try MasterKey(bytes: Array(d), source: source) }
        throw CairnError(
            .configInvalid, "the master key in \(source) is not 32 bytes written as base64 or 64 hex digits",
            hint: "create one with `cairn key generate --output FILE`")
    }

    /// Reads a key file; `warnings` receives a note when other users may read it.
    public static func load(file path: String, warnings: inout [String]) throws -> MasterKey {
        guard let (data, warning) = FileIO.readSecret(path, what: "master key file") else {
            throw CairnError(
                .configInvalid, "master key file \(path) does not exist or is not readable (uid \(getuid()))",
                hint:
                    "create it with `cairn key generate --output \(path)` for a new repository, or fix repository.encryption.key_file"
            )
        }
        if let warning { warnings.append(warning) }
        return try parse(String(decoding: data, as: UTF8.self), source: "file \(path)")
    }

    /// Reads a key from an environment variable.
    public static func load(variable name: String, environment: [String: String]) throws -> MasterKey {
        guard let v = environment[name], !v.isEmpty else {
            throw CairnError(
                .configInvalid, "environment variable \(name) (repository.encryption.key_env) is not set",
                hint:
                    "export \(name) with the repository's master key in the environment of every cairn process (also PostgreSQL's, for archive_command)"
            )
        }
        return try parse(v, source: "environment variable \(name)")
    }

    /// Writes a new random key to `path` (created with mode 0600; never replaces a file). Returns the key.
    public static func generate(into path: String) throws -> MasterKey {
        let bytes = generate()
        let text = Data(bytes).base64EncodedString() + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            throw CairnError(
                .localIO, "cannot create \(path): \(why)",
                hint: errno == EEXIST ? "cairn never replaces a key file; choose a new path" : nil)
        }
        defer { close(fd) }
        try Array(text.utf8).withUnsafeBytes { try FileIO.writeAll(fd, $0) }
        guard fsync(fd) == 0 else {
            throw CairnError(.localIO, "cannot sync \(path): \(String(cString: strerror(errno)))")
        }
        return try MasterKey(bytes: bytes, source: "file \(path)")
    }
}
