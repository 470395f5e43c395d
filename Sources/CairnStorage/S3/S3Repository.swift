import CairnBase
import Crypto
import Foundation

/// A repository in an S3-compatible bucket, over libcurl with Cairn's own SigV4 signer.
///
/// - Writes up to `singlePutLimit` go up in one PUT; larger ones as a multipart upload whose parts are uploaded
///   in parallel (memory bound: `(concurrency + 1) × partSize`), aborted on failure.
/// - Every body carries `Content-MD5` and its SHA-256 is signed; part and object ETags are checked against the
///   MD5 when the server's encryption mode keeps ETags equal to the MD5.
/// - Create-only writes use `If-None-Match: *` on PutObject and CompleteMultipartUpload (atomic on AWS S3).
/// - Downloads resume after a dropped connection with a ranged GET guarded by `If-Match`.
/// - Deletes go in DeleteObjects batches of up to 1000 keys; with Object Lock, every version of each key goes
///   and locked versions are kept and reported (`S3ObjectLockOps.swift`).
public final class S3Repository: Repository {
    let client: S3Client
    public var settings: S3Settings { client.settings }

    /// - Parameter credentialSource: where the credentials came from, named in authentication hints.
    public init(
        settings: S3Settings, credentialSource: String = "the AWS credentials", clock: any WallClock = SystemClock()
    ) {
        client = S3Client(settings: settings, credentialSource: credentialSource, clock: clock)
    }

    public var location: String { client.describe(nil) }
    /// The location with the endpoint (scheme, host and port, the default port spelled out) and the region:
    /// a bucket of the same name on another endpoint is another store.
    public var identity: String {
        let e = settings.endpoint
        let scheme = (e.scheme ?? "https").lowercased()
        let port = e.port ?? (scheme == "http" ? 80 : 443)
        var host = (e.host ?? "localhost").lowercased()
        if host.contains(":") { host = "[\(host)]" }
        return "\(location) endpoint=\(scheme)://\(host):\(port) region=\(settings.region)"
    }
    public var capabilities: RepositoryCapabilities {
        etagIsMD5
            ? [.durableWrites, .parallelWrites, .persistent, .verifiedWrites]
            : [.durableWrites, .parallelWrites, .persistent]
    }

    /// Headers every write of `key` carries (storage class, server-side encryption, Object Lock).
    func writeHeaders(for key: String) -> [(String, String)] {
        var h: [(String, String)] = lockHeaders(for: key)
        if let sc = settings.storageClass { h.append(("x-amz-storage-class", sc)) }
        if let sse = settings.serverSideEncryption {
            h.append(("x-amz-server-side-encryption", sse))
            if let kms = settings.kmsKeyId { h.append(("x-amz-server-side-encryption-aws-kms-key-id", kms)) }
        }
        return h
    }

    /// Whether the server returns the body's MD5 as ETag (not with SSE-KMS).
    var etagIsMD5: Bool { settings.serverSideEncryption == nil || settings.serverSideEncryption == "AES256" }

    @discardableResult
    public func put(_ key: String, _ bytes: [UInt8], options: PutOptions) throws -> ObjectInfo {
        try validateKey(key)
        return try bytes.withUnsafeBytes { try putObject(key, $0, options: options) }
    }

    func putObject(_ key: String, _ body: UnsafeRawBufferPointer, options: PutOptions) throws -> ObjectInfo {
        var req = S3Client.Request(method: "PUT", key: key)
        req.headers = writeHeaders(for: key) + [("Content-Type", "application/octet-stream")]
        if options.createOnly { req.headers.append(("If-None-Match", "*")) }
        req.body = body
        let md5Bytes = Array(Insecure.MD5.hash(data: body))
        req.contentMD5 = md5Bytes
        let md5 = Hex.encode(md5Bytes)
        let r: HTTPResponse
        do { r = try client.send(req) } catch let e as CairnError where e.code == .repoObjectExists {
            // A retry after a lost acknowledgement finds our own object: accept it only if it holds exactly these bytes.
            if etagIsMD5, try storedETag(key) == md5 {
                return ObjectInfo(key: key, size: Int64(body.count), lastModified: Date())
            }
            throw CairnError.exists(key, in: location)
        }
        try checkETag(r, md5: md5, what: "PUT \(client.describe(key))")
        return ObjectInfo(key: key, size: Int64(body.count), lastModified: Date())
    }

    /// The ETag of a stored object without quotes, or nil when it does not exist.
    func storedETag(_ key: String) throws -> String? {
        var req = S3Client.Request(method: "HEAD", key: key)
        req.accept = [404]
        let r = try client.send(req)
        guard r.status != 404 else { return nil }
        return r.headers["etag"]?.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
    }

    /// Checks the answer's ETag against the hex MD5 of what was sent.
    func checkETag(_ r: HTTPResponse, md5: String, what: String) throws {
        guard etagIsMD5, let etag = r.headers["etag"] else { return }
        if etag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased() != md5 {
            throw CairnError(
                .dataCorrupt, "\(what): the stored object's ETag \(etag) does not match the MD5 of what was sent",
                hint: "the endpoint or a proxy altered the data; retry, and check any proxy between cairn and the store"
            )
        }
    }

    public func makeWriter(_ key: String, options: PutOptions) throws -> any ObjectWriter {
        try validateKey(key)
        return S3MultipartWriter(repo: self, key: key, options: options)
    }

    @discardableResult
    public func get(
        _ key: String, range: ByteRange?, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> ObjectInfo {
        try validateKey(key)
        return try withoutActuallyEscaping(sink) { sink in
            let (size, modified) = try client.getObject(key, range: range, sink: sink)
            return ObjectInfo(key: key, size: size, lastModified: modified)
        }
    }

    public func head(_ key: String) throws -> ObjectInfo? {
        try validateKey(key)
        var req = S3Client.Request(method: "HEAD", key: key)
        req.accept = [404]
        let r = try client.send(req)
        if r.status == 404 {
            // HEAD has no body, so a missing bucket looks like a missing key: tell them apart once.
            try checkBucketExists()
            return nil
        }
        let size = r.headers["content-length"].flatMap { Int64($0) } ?? 0
        return ObjectInfo(
            key: key, size: size, lastModified: r.headers["last-modified"].flatMap(S3Client.parseHTTPDate))
    }

    /// Throws `repo.bucket-missing` when the bucket does not exist.
    func checkBucketExists() throws {
        var req = S3Client.Request(method: "GET", key: nil)
        req.query = [("list-type", "2"), ("max-keys", "1"), ("prefix", settings.prefix)]
        _ = try client.send(req)
    }

    public func list(prefix: String) throws -> [ObjectInfo] {
        var out: [ObjectInfo] = []
        var token: String?
        let fullPrefix = client.fullKey(prefix)
        let strip = settings.prefix.isEmpty ? 0 : settings.prefix.count + 1
        repeat {
            var req = S3Client.Request(method: "GET", key: nil)
            req.query = [("list-type", "2"), ("max-keys", "1000"), ("prefix", fullPrefix)]
            if let token { req.query.append(("continuation-token", token)) }
            let r = try client.send(req)
            guard let xml = XMLElement.parse(r.body), xml.name == "ListBucketResult" else {
                throw CairnError(.repoProtocol, "LIST \(location): the endpoint's answer is not a ListBucketResult")
            }
            for c in xml.all("Contents") {
                guard let k = c.text("Key"), k.count >= strip else { continue }
                let key = String(k.dropFirst(strip))
                guard !key.isEmpty else { continue }
                out.append(
                    ObjectInfo(
                        key: key, size: Int64(c.text("Size") ?? "") ?? 0,
                        lastModified: c.text("LastModified").flatMap(S3Client.parseISODate)))
            }
            token = xml.text("IsTruncated") == "true" ? xml.text("NextContinuationToken") : nil
        } while token != nil
        return out.sorted { $0.key < $1.key }
    }

    public func delete(_ keys: [String]) throws {
        for k in keys { try validateKey(k) }
        if settings.objectLock != nil { return try deleteEveryVersion(keys) }
        var failures: [String] = []
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let batch = keys[start..<min(start + 1000, keys.count)]
            let errors = try deleteObjects(
                batch.map { "<Object><Key>\(XMLElement.escape(client.fullKey($0)))</Key></Object>" })
            for e in errors where e.text("Code") != "NoSuchKey" {
                failures.append("\(e.text("Key") ?? "?"): \(e.text("Code") ?? "?")")
            }
        }
        if !failures.isEmpty {
            throw CairnError(
                .repoIO,
                "DELETE in \(location): \(failures.count) object(s) could not be deleted: "
                    + failures.prefix(5).joined(separator: ", "))
        }
    }

    // MARK: multipart primitives

    func createMultipart(_ key: String, createOnly: Bool) throws -> String {
        var req = S3Client.Request(method: "POST", key: key)
        req.query = [("uploads", "")]
        req.headers = writeHeaders(for: key) + [("Content-Type", "application/octet-stream")]
        let r = try client.send(req)
        guard let id = XMLElement.parse(r.body)?.text("UploadId"), !id.isEmpty else {
            throw CairnError(.repoProtocol, "POST \(client.describe(key))?uploads: no UploadId in the answer")
        }
        return id
    }

    func uploadPart(_ key: String, uploadId: String, number: Int, _ body: UnsafeRawBufferPointer) throws -> String {
        var req = S3Client.Request(method: "PUT", key: key)
        req.query = [("partNumber", String(number)), ("uploadId", uploadId)]
        req.body = body
        let md5 = Array(Insecure.MD5.hash(data: body))
        req.contentMD5 = md5
        let r = try client.send(req)
        guard let etag = r.headers["etag"] else {
            throw CairnError(.repoProtocol, "PUT \(client.describe(key)) part \(number): no ETag in the answer")
        }
        try checkETag(r, md5: Hex.encode(md5), what: "PUT \(client.describe(key)) part \(number)")
        return etag
    }

    func completeMultipart(_ key: String, uploadId: String, parts: [(Int, String)], createOnly: Bool) throws {
        var xml = "<CompleteMultipartUpload>"
        for (n, etag) in parts.sorted(by: { (a: (Int, String), b: (Int, String)) -> Bool in a.0 < b.0 }) {
            xml += "<Part><PartNumber>\(n)</PartNumber><ETag>\(XMLElement.escape(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        let r: HTTPResponse = try body.withUnsafeBytes { buf in
            var req = S3Client.Request(method: "POST", key: key)
            req.query = [("uploadId", uploadId)]
            req.headers = [("Content-Type", "application/xml")]
            if createOnly { req.headers.append(("If-None-Match", "*")) }
            req.body = buf
            req.contentMD5 = Array(Insecure.MD5.hash(data: buf))
            do { return try client.send(req) } catch let e as CairnError
                where e.code == .repoObjectExists || e.code == .repoObjectMissing
            {
                // A retry after a lost acknowledgement finds the upload completed (412, or 404 NoSuchUpload):
                // accept it only if the object's ETag is the one these parts make.
                if etagIsMD5, let expected = S3Repository.multipartETag(parts.sorted { $0.0 < $1.0 }.map(\.1)),
                    try storedETag(key) == expected
                {
                    return HTTPResponse(
                        status: 200, headers: [:],
                        body: Array(
                            "<CompleteMultipartUploadResult><ETag>\"\(expected)\"</ETag></CompleteMultipartUploadResult>"
                                .utf8))
                }
                if e.code == .repoObjectExists { throw CairnError.exists(key, in: location) }
                throw e
            }
        }
        // CompleteMultipartUpload can answer 200 with an error document. (AWS names the result
        // CompleteMultipartUploadResult; some emulators say ...Response.)
        let res = XMLElement.parse(r.body)
        if res?.name.hasPrefix("CompleteMultipartUpload") != true || res?.text("ETag") == nil {
            let code = res?.text("Code") ?? "no result document"
            throw CairnError(
                .repoIO, "POST \(client.describe(key))?uploadId: completing the upload failed (\(code))",
                retryable: false)
        }
    }

    /// Aborts multipart uploads under the prefix that started more than `age` seconds ago (left by killed
    /// writers; they are invisible but cost storage). Returns how many.
    public func abortStaleUploads(olderThan age: Double, now: Date) throws -> Int {
        var aborted = 0
        var keyMarker: String?
        var idMarker: String?
        repeat {
            var req = S3Client.Request(method: "GET", key: nil)
            req.query = [("uploads", ""), ("prefix", client.fullKey(""))]
            if let keyMarker { req.query.append(("key-marker", keyMarker)) }
            if let idMarker { req.query.append(("upload-id-marker", idMarker)) }
            let r = try client.send(req)
            guard let xml = XMLElement.parse(r.body) else { break }
            for u in xml.all("Upload") {
                guard let k = u.text("Key"), let id = u.text("UploadId"),
                    let started = u.text("Initiated").flatMap(S3Client.parseISODate),
                    now.timeIntervalSince(started) > age
                else { continue }
                let strip = settings.prefix.isEmpty ? 0 : settings.prefix.count + 1
                abortMultipart(String(k.dropFirst(strip)), uploadId: id)
                aborted += 1
            }
            let truncated = xml.text("IsTruncated") == "true"
            keyMarker = truncated ? xml.text("NextKeyMarker") : nil
            idMarker = truncated ? xml.text("NextUploadIdMarker") : nil
        } while keyMarker != nil
        return aborted
    }

    /// S3's ETag of a completed multipart upload: MD5 of the concatenated binary part MD5s, then `-<parts>`.
    static func multipartETag(_ partETags: [String]) -> String? {
        var all = [UInt8]()
        for e in partETags {
            guard let md5 = Hex.decode(e.trimmingCharacters(in: CharacterSet(charactersIn: "\""))), md5.count == 16
            else { return nil }
            all += md5
        }
        return Hex.encode(Insecure.MD5.hash(data: all)) + "-\(partETags.count)"
    }

    func abortMultipart(_ key: String, uploadId: String) {
        var req = S3Client.Request(method: "DELETE", key: key)
        req.query = [("uploadId", uploadId)]
        req.accept = [404]
        _ = try? client.send(req)
    }
}
