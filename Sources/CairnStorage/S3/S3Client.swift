import CCurl
import CairnBase
import Crypto
import Foundation
import Logging

/// Signs, sends and retries S3 requests, and turns failures into ``CairnError``s with hints.
final class S3Client: @unchecked Sendable {
    let settings: S3Settings
    let signer: SigV4Signer
    let transport: CurlTransport
    let clock: any WallClock
    let logger = Logger(label: "cairn.s3")
    /// Where the credentials came from, for hints ("AWS_SECRET_ACCESS_KEY", "credentials file /etc/…").
    let credentialSource: String

    init(settings: S3Settings, credentialSource: String, clock: any WallClock = SystemClock()) {
        self.settings = settings
        self.signer = SigV4Signer(credentials: settings.credentials, region: settings.region)
        self.transport = CurlTransport(
            caFile: settings.caFile, verifyTLS: settings.verifyTLS,
            connectTimeout: settings.connectTimeout, stallTimeout: settings.stallTimeout)
        self.clock = clock
        self.credentialSource = credentialSource
    }

    /// One logical S3 request.
    struct Request {
        var method: String
        /// Object key relative to the repository (the prefix is added here); nil for bucket-level requests.
        var key: String?
        var query: [(String, String)] = []
        var headers: [(String, String)] = []
        var body: UnsafeRawBufferPointer? = nil
        /// The body's MD5, sent as `Content-MD5` (S3 then rejects a body damaged in transit).
        var contentMD5: [UInt8]? = nil
        /// Statuses returned to the caller instead of being turned into errors (e.g. 404 for HEAD).
        var accept: Set<Int> = []
    }

    /// The full bucket key for a repository key.
    func fullKey(_ key: String) -> String { settings.prefix.isEmpty ? key : settings.prefix + "/" + key }

    /// `s3://bucket/prefix/key`, for messages.
    func describe(_ key: String?) -> String {
        guard let key else { return "s3://\(settings.bucket)/\(settings.prefix)" }
        return "s3://\(settings.bucket)/\(fullKey(key))"
    }

    /// Host header, URL path and base URL (scheme://host) for a request.
    private func address(for key: String?) -> (host: String, path: String, base: String) {
        let scheme = settings.endpoint.scheme ?? "https"
        var host = settings.endpoint.host ?? "localhost"
        if host.contains(":") { host = "[\(host)]" }
        if let port = settings.endpoint.port { host += ":\(port)" }
        let encodedKey = key.map { SigV4Signer.uriEncode(fullKey($0), keepSlash: true) }
        switch settings.uriStyle {
        case .path:
            let path = "/" + settings.bucket + (encodedKey.map { "/" + $0 } ?? "")
            return (host, path, "\(scheme)://\(host)")
        case .host:
            let vhost = settings.bucket + "." + host
            return (vhost, "/" + (encodedKey ?? ""), "\(scheme)://\(vhost)")
        }
    }

    /// Sends a request with retries; returns the response for 2xx and accepted statuses.
    func send(_ req: Request) throws -> HTTPResponse {
        var ignored: Int64 = 0
        return try send(req, sink: .collect, delivered: &ignored)
    }

    /// Sends a request with retries. With a streaming sink, a retry happens only if no byte was delivered yet
    /// (use ``getObject`` for resumable downloads).
    func send(
        _ req: Request, sink: CurlTransport.BodySink, delivered: inout Int64, deadline: Date? = nil
    ) throws -> HTTPResponse {
        let deadline = deadline ?? clock.now().addingTimeInterval(settings.requestDeadline)
        let (host, path, base) = address(for: req.key)
        let query = SigV4Signer.canonicalQuery(req.query)
        let url = base + path + (query.isEmpty ? "" : "?" + query)
        let (headers, payloadHash) = payloadHeaders(req)
        let what = "\(req.method) \(describe(req.key))"

        var attempt = 0
        while true {
            attempt += 1
            let sig = signer.sign(
                method: req.method, host: host, path: path, query: query,
                headers: headers.filter { $0.0 != "Content-Length" }, payloadHash: payloadHash,
                date: clock.now())
            let wire = headers + [("Host", host)] + sig.headers
            traceRequest(what, attempt: attempt, headers: wire)
            let remaining = deadline.timeIntervalSince(clock.now())
            var got: Int64 = 0
            let outcome = try transport.perform(
                method: req.method, url: url, headers: wire, body: req.body,
                sink: sink, timeout: remaining, delivered: &got)
            delivered += got
            let error: CairnError
            switch outcome {
            case .response(let r) where (200..<300).contains(r.status) || req.accept.contains(r.status):
                logger.debug(
                    "S3 response", metadata: ["request": "\(what)", "status": "\(r.status)", "attempt": "\(attempt)"])
                return r
            case .response(let r):
                error = mapHTTPError(r, what: what)
            case .failure(let code, let message):
                error = mapCurlError(code, message, what: what, timedOutAt: remaining)
            }
            let now = clock.now()
            let backoff = min(5.0, 0.1 * pow(2, Double(attempt - 1))) * Double.random(in: 0.5...1.0)
            guard error.retryable, got == 0, attempt <= settings.maxRetries,
                now.addingTimeInterval(backoff + 0.5) < deadline
            else {
                throw givingUp(
                    error, attempts: attempt, elapsed: settings.requestDeadline - deadline.timeIntervalSince(now))
            }
            logger.warning(
                "retrying S3 request",
                metadata: [
                    "request": "\(what)", "attempt": "\(attempt)",
                    "reason": "\(error.message)"
                ])
            clock.sleep(seconds: backoff)
        }
    }

    /// The request's headers with those its body implies (length, MD5, payload hash), and the payload hash.
    private func payloadHeaders(_ req: Request) -> (headers: [(String, String)], payloadHash: String) {
        var headers = req.headers
        let payloadHash: String
        if let body = req.body {
            payloadHash = SigV4Signer.sha256Hex(body)
            headers.append(("Content-Length", String(body.count)))
            if let md5 = req.contentMD5 { headers.append(("Content-MD5", Data(md5).base64EncodedString())) }
        } else {
            payloadHash = SigV4Signer.emptyPayloadHash
        }
        headers.append(("x-amz-content-sha256", payloadHash))
        return (headers, payloadHash)
    }

    /// Logs a request's headers at trace level. The signature and a session token are secrets: never logged.
    private func traceRequest(_ what: String, attempt: Int, headers wire: [(String, String)]) {
        guard logger.logLevel <= .trace else { return }
        let shown = wire.map {
            ["authorization", "x-amz-security-token"].contains($0.0.lowercased())
                ? "\($0.0): <redacted>" : "\($0.0): \($0.1)"
        }
        logger.trace(
            "S3 request",
            metadata: ["request": "\(what)", "attempt": "\(attempt)", "headers": "\(shown.joined(separator: "; "))"])
    }

    /// The error a request fails with when it is not retried again: after retries, it says how many and how long.
    private func givingUp(_ error: CairnError, attempts: Int, elapsed: Double) -> CairnError {
        guard error.retryable && attempts > 1 else { return error }
        return CairnError(
            error.code == .repoUnreachable ? .repoUnreachable : .repoTimeout,
            "\(error.message) (gave up after \(attempts) attempts in \(Units.formatDuration(elapsed)))",
            hint: error.hint)
    }

    /// Downloads an object (or range) to `sink`, resuming from the last delivered byte when the connection drops.
    /// Resumed requests carry `If-Match` with the first response's ETag so a replaced object is never spliced.
    /// The whole download, resumes included, must finish within `requestDeadline`.
    func getObject(
        _ key: String, range: ByteRange?, sink: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) throws
        -> (size: Int64, lastModified: Date?)
    {
        let deadline = clock.now().addingTimeInterval(settings.requestDeadline)
        var delivered: Int64 = 0
        var etag: String?
        var total: Int64?
        var lastModified: Date?
        var resumes = 0
        while true {
            var req = Request(method: "GET", key: key)
            let start = (range?.start ?? 0) + delivered
            if start > 0 || range?.end != nil {
                if let end = range?.end {
                    if start >= end { return (total ?? end, lastModified) }
                    req.headers.append(("Range", "bytes=\(start)-\(end - 1)"))
                } else {
                    req.headers.append(("Range", "bytes=\(start)-"))
                }
            }
            if let etag { req.headers.append(("If-Match", etag)) }
            req.accept = [416]
            var got: Int64 = 0
            var firstHeaders: [String: String]?
            do {
                let r = try send(
                    req, sink: .stream(sink, onHeaders: { firstHeaders = $0 }), delivered: &got, deadline: deadline)
                delivered += got
                if r.status == 416 { return (total ?? start, lastModified) }  // range starts at the end
                etag = etag ?? r.headers["etag"]
                lastModified = lastModified ?? r.headers["last-modified"].flatMap(S3Client.parseHTTPDate)
                if let cr = r.headers["content-range"], let slash = cr.lastIndex(of: "/") {
                    total = Int64(cr[cr.index(after: slash)...])
                } else if total == nil, let cl = r.headers["content-length"] {
                    total = Int64(cl)
                }
                return (total ?? delivered, lastModified)
            } catch let e as CairnError where got > 0 && resumes < 100 && clock.now() < deadline {
                // Part of the body arrived before the transfer broke: resume after the last delivered byte,
                // and only from the same version of the object.
                delivered += got
                resumes += 1
                etag = etag ?? firstHeaders?["etag"]
                if let cr = firstHeaders?["content-range"], let slash = cr.lastIndex(of: "/"), total == nil {
                    total = Int64(cr[cr.index(after: slash)...])
                }
                logger.warning(
                    "resuming S3 download",
                    metadata: [
                        "object": "\(describe(key))", "offset": "\(delivered)",
                        "reason": "\(e.message)"
                    ])
            }
        }
    }

    // MARK: - error mapping

    func mapHTTPError(_ r: HTTPResponse, what: String) -> CairnError {
        let xml = XMLElement.parse(r.body)
        let code = xml?.text("Code") ?? ""
        let detail = code.isEmpty ? "HTTP \(r.status)" : "\(code), HTTP \(r.status)"
        switch (r.status, code) {
        case (403, "SignatureDoesNotMatch"):
            return CairnError(
                .repoAuth, "\(what): the endpoint rejected the request signature (\(detail))",
                hint:
                    "the secret access key does not match access key \(AWSCredentials.mask(settings.credentials.accessKeyId)); check \(credentialSource)"
            )
        case (403, "InvalidAccessKeyId"), (403, "InvalidToken"), (400, "InvalidToken"), (400, "ExpiredToken"),
            (403, "ExpiredToken"):
            return CairnError(
                .repoAuth, "\(what): the endpoint does not accept the access key or token (\(detail))",
                hint: "check the access key id and session token in \(credentialSource)")
        case (403, "RequestTimeTooSkewed"):
            return CairnError(
                .repoAuth, "\(what): this machine's clock differs too much from the endpoint's (\(detail))",
                hint: "synchronise the clock (chrony or systemd-timesyncd) and retry")
        case (403, _):
            return CairnError(
                .repoAccessDenied, "\(what): access denied (\(detail))",
                hint:
                    "grant s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on bucket \(settings.bucket) to access key \(AWSCredentials.mask(settings.credentials.accessKeyId))"
            )
        case (404, "NoSuchBucket"):
            return CairnError(
                .repoBucketMissing, "bucket \(settings.bucket) does not exist at \(settings.endpoint.absoluteString)",
                hint: "create the bucket or correct repository.bucket (and repository.endpoint / region)")
        case (404, _), (410, _):
            return CairnError(.repoObjectMissing, "\(what): object does not exist")
        case (412, _):
            return CairnError(
                .repoObjectExists, "\(what): precondition failed, the object exists or changed (\(detail))")
        case (409, "ConditionalRequestConflict"), (409, "OperationAborted"), (400, "RequestTimeout"),
            (408, _), (429, _), (500..., _):
            return CairnError(.repoIO, "\(what): the endpoint failed (\(detail))", retryable: true)
        case (301, _), (307, _), (400, "AuthorizationHeaderMalformed"), (400, "IllegalLocationConstraintException"):
            return CairnError(
                .repoProtocol, "\(what): the bucket is in another region or at another endpoint (\(detail))",
                hint: "set repository.region to the bucket's region (AWS_REGION overrides it)")
        case (400, "InvalidRequest") where settings.objectLock != nil && what.hasPrefix("PUT"),
            (400, "InvalidRequest") where settings.objectLock != nil && what.hasPrefix("POST"):
            return CairnError(
                .repoProtocol,
                "\(what): the bucket refused a write with an Object Lock retention (\(detail)); it probably does not have Object Lock enabled",
                hint:
                    "enable Object Lock on bucket \(settings.bucket) (which turns versioning on), or remove repository.object_lock; `cairn doctor` checks the bucket"
            )
        default:
            let msg = xml?.text("Message").map { ": \($0)" } ?? ""
            return CairnError(.repoProtocol, "\(what): unexpected response (\(detail))\(msg)")
        }
    }

    func mapCurlError(_ code: CURLcode, _ message: String, what: String, timedOutAt: Double) -> CairnError {
        let endpoint = settings.endpoint.absoluteString
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST:
            let styleHint =
                settings.uriStyle == .host
                ? " (with uri_style: host the bucket name is part of the host name; emulators and MinIO usually need uri_style: path)"
                : ""
            return CairnError(
                .repoUnreachable, "\(what): cannot resolve the endpoint's host name (\(message))",
                hint: "check repository.endpoint (\(endpoint))\(styleHint)", retryable: true)
        case CURLE_COULDNT_CONNECT:
            return CairnError(
                .repoUnreachable, "\(what): cannot connect to \(endpoint) (\(message))",
                hint: "check that the endpoint is up and that repository.endpoint has the right host and port",
                retryable: true)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_ISSUER_ERROR,
            CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_CRL_BADFILE:
            return CairnError(
                .repoTLS, "\(what): the endpoint's TLS certificate was not accepted (\(message))",
                hint: "set repository.ca_file to the CA certificate that signed the endpoint's certificate")
        case CURLE_SSL_CONNECT_ERROR:
            return CairnError(
                .repoTLS, "\(what): TLS handshake with \(endpoint) failed (\(message))",
                hint: "check that the endpoint speaks TLS on that port (use http:// for a plain endpoint)",
                retryable: true)
        case CURLE_OPERATION_TIMEDOUT:
            return CairnError(
                .repoTimeout,
                "\(what): no progress for \(Int(settings.stallTimeout))s or the request deadline passed (\(message))",
                hint:
                    "check the network path to \(endpoint); limits.io_timeout and limits.request_timeout set the bounds",
                retryable: true)
        case CURLE_ABORTED_BY_CALLBACK, CURLE_WRITE_ERROR:
            return CairnError(.interrupted, "\(what): transfer aborted")
        default:
            return CairnError(.repoIO, "\(what): transfer failed (\(message))", retryable: true)
        }
    }

    static func parseHTTPDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }

    static func parseISODate(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }
}
