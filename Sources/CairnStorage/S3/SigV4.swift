import CairnBase
import Crypto
import Foundation

/// AWS credentials. `description` never shows the secret or the token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "AWSCredentials(accessKeyId: \(AWSCredentials.mask(accessKeyId)), secret: <redacted>)"
    }

    /// Shows the first four and last two characters of an access key id, enough to tell keys apart.
    public static func mask(_ id: String) -> String {
        id.count <= 8 ? "<redacted>" : String(id.prefix(4)) + "…" + String(id.suffix(2))
    }
}

/// AWS Signature Version 4 for S3 (header-based authentication).
///
/// The caller supplies the path and query exactly as they go on the wire (already URI-encoded) and the
/// payload hash; the signer adds `x-amz-date`, `x-amz-security-token` (with a session token) and
/// `Authorization`. Every header passed in is signed, plus `host`.
public struct SigV4Signer: Sendable {
    public let credentials: AWSCredentials
    public let region: String
    public let service: String

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// SHA-256 of the empty payload.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The pieces of one signature, exposed for tests against published vectors.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var authorization: String
        /// Headers to add to the request: `x-amz-date`, optionally `x-amz-security-token`, and `Authorization`.
        public var headers: [(String, String)]
    }

    /// Signs a request.
    /// - Parameters:
    ///   - method: HTTP method.
    ///   - host: the `Host` header value exactly as sent (with `:port` when the URL has one).
    ///   - path: the URI path as sent, URI-encoded (S3 does not normalise or double-encode it).
    ///   - query: the canonical query string (see ``canonicalQuery(_:)``); sent verbatim.
    ///   - headers: headers to sign (names in any case).
    ///   - payloadHash: hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`; must equal the `x-amz-content-sha256` header.
    ///   - date: the signing time.
    public func sign(
        method: String, host: String, path: String, query: String,
        headers: [(String, String)], payloadHash: String, date: Date
    ) -> Signature {
        let amzDate = SigV4Signer.amzDate(date)
        let day = String(amzDate.prefix(8))
        var all: [(String, String)] = headers.map { ($0.0.lowercased(), SigV4Signer.trimHeaderValue($0.1)) }
        all.append(("host", host))
        all.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }
        all.sort { (a: (String, String), b: (String, String)) -> Bool in a.0 < b.0 }
        let signedHeaders = all.map { $0.0 }.joined(separator: ";")
        let canonicalHeaders = all.map { "\($0.0):\($0.1)\n" }.joined()
        let canonicalRequest = [method, path.isEmpty ? "/" : path, query, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SigV4Signer.sha256Hex(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")
        let kDate = SigV4Signer.hmac(Array(("AWS4" + credentials.secretAccessKey).utf8), day)
        let kRegion = SigV4Signer.hmac(kDate, region)
        let kService = SigV4Signer.hmac(kRegion, service)
        let kSigning = SigV4Signer.hmac(kService, "aws4_request")
        let signature = Hex.encode(SigV4Signer.hmac(kSigning, stringToSign))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        var out: [(String, String)] = [("x-amz-date", amzDate)]
        if let token = credentials.sessionToken { out.append(("x-amz-security-token", token)) }
        out.append(("Authorization", authorization))
        return Signature(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign,
            authorization: authorization, headers: out)
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
    public static func amzDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec)
    }

    /// URI-encodes per SigV4: every byte except `A-Z a-z 0-9 - _ . ~` becomes `%XX` (uppercase hex);
    /// `/` is kept when `keepSlash` is true (object key paths).
    public static func uriEncode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// The canonical query string: names and values URI-encoded, sorted by name then value, `name=value`
    /// joined with `&` (a parameter without a value is `name=`).
    public static func canonicalQuery(_ items: [(String, String)]) -> String {
        items.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
            .sorted { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    static func trimHeaderValue(_ v: String) -> String {
        v.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    static func hmac(_ key: [UInt8], _ data: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(data.utf8), using: SymmetricKey(data: key)))
    }

    /// Hex SHA-256.
    public static func sha256Hex<D: DataProtocol>(_ data: D) -> String { Hex.encode(SHA256.hash(data: data)) }
}
