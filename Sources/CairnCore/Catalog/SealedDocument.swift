import CairnBase
import Crypto
import Foundation

/// JSON documents that carry their own digest: `{"body": …, "sha256": "<hex of the body's bytes>"}`.
///
/// The digest covers the body's exact bytes as written, so a reader detects any change (a bit flip, a truncation,
/// a hand edit) before trusting a manifest or `cairn.json`. The file stays plain JSON for `jq`.
public enum SealedDocument {
    static let head = Array("{\"body\":".utf8)
    static let mid = Array(",\"sha256\":\"".utf8)
    static let end = Array("\"}\n".utf8)

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { dec in
            let c = try dec.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = Timestamp.parse(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a timestamp: \(s)")
            }
            return date
        }
        return d
    }

    /// Serialises and seals a value.
    public static func seal<T: Encodable>(_ value: T) throws -> [UInt8] {
        let body = Array(try encoder().encode(value))
        return head + body + mid + Array(Hex.encode(SHA256.hash(data: body)).utf8) + end
    }

    /// Checks the seal and decodes the body. `what` names the document in errors.
    public static func open<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        func corrupt(_ why: String) -> CairnError {
            CairnError(
                .repoCorrupt, "\(what) is damaged: \(why)",
                hint: "run `cairn verify`; if only this copy is damaged, cairn uses its .copy twin where one exists")
        }
        let hexLen = 64
        guard bytes.count >= head.count + mid.count + hexLen + end.count,
            Array(bytes.prefix(head.count)) == head
        else { throw corrupt("not a sealed document") }
        // Exactly as sealed, final newline included: a document cut by one byte is a truncated document.
        let trimmed = bytes
        guard Array(trimmed.suffix(end.count)) == end else { throw corrupt("truncated") }
        let hexStart = trimmed.count - end.count - hexLen
        let midStart = hexStart - mid.count
        guard midStart > head.count, Array(trimmed[midStart..<hexStart]) == mid else { throw corrupt("truncated") }
        let digest = String(decoding: trimmed[hexStart..<(hexStart + hexLen)], as: UTF8.self)
        let body = Array(trimmed[head.count..<midStart])
        guard Hex.encode(SHA256.hash(data: body)) == digest else {
            throw corrupt("its digest does not match its content")
        }
        do {
            return try decoder().decode(T.self, from: Data(body))
        } catch {
            throw corrupt("unexpected content (\(error.localizedDescription))")
        }
    }
}

/// UTC timestamps as Cairn writes them: `2026-11-25T15:04:59.123Z`.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// Parses ISO 8601 with or without fractional seconds.
    public static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }
}
