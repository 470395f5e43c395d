import CairnBase
import Crypto
import Foundation

/// One stored version of a key, or a delete marker, as ListObjectVersions reports it.
struct S3ObjectVersion: Hashable {
    /// The repository key (the prefix taken off).
    var key: String
    var versionId: String
    var isLatest: Bool
    var isDeleteMarker: Bool
}

/// The keys a delete kept because they are under Object Lock: the `cause` of a `repo.object-locked` error.
public struct LockedObjects: Error, Sendable, Equatable {
    public var keys: [String]
    /// The retain-until date of one of them (the others' may be later).
    public var until: Date
}

/// What a bucket says about Object Lock and versioning (`cairn doctor`).
public struct S3BucketProtection: Sendable, Equatable {
    /// GetObjectLockConfiguration answered `ObjectLockEnabled: Enabled`.
    public var objectLockEnabled: Bool
    /// GetBucketVersioning's status: `Enabled`, `Suspended`, or nil when versioning was never turned on.
    public var versioning: String?
    /// The bucket's default retention rule, e.g. `GOVERNANCE 30 days` (nil: none).
    public var defaultRetention: String?

    public init(objectLockEnabled: Bool, versioning: String?, defaultRetention: String? = nil) {
        self.objectLockEnabled = objectLockEnabled
        self.versioning = versioning
        self.defaultRetention = defaultRetention
    }
}

extension S3Repository {
    /// The Object Lock headers a write of `key` carries: the mode and a retain-until date `period` seconds from now
    /// (rounded up to the second), none for exempt keys or without a lock.
    func lockHeaders(for key: String) -> [(String, String)] {
        guard let lock = settings.objectLock, !lock.exempt(key) else { return [] }
        let until = Date(timeIntervalSince1970: (client.clock.now().timeIntervalSince1970 + lock.period).rounded(.up))
        return [
            ("x-amz-object-lock-mode", lock.mode.rawValue),
            ("x-amz-object-lock-retain-until-date", S3Repository.isoSeconds(until))
        ]
    }

    /// Locks a completed multipart upload that came out without a retention (PutObjectRetention): some servers
    /// (moto) ignore the lock headers of CreateMultipartUpload, which AWS applies to the completed object.
    func ensureRetention(_ key: String) throws {
        let headers = lockHeaders(for: key)
        guard headers.count == 2 else { return }
        var head = S3Client.Request(method: "HEAD", key: key)
        head.accept = [404]
        if try client.send(head).headers["x-amz-object-lock-retain-until-date"] != nil { return }
        let xml =
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>\(headers[0].1)</Mode><RetainUntilDate>\(headers[1].1)</RetainUntilDate></Retention>"
        let body = Array(xml.utf8)
        _ = try body.withUnsafeBytes { buf in
            var req = S3Client.Request(method: "PUT", key: key)
            req.query = [("retention", "")]
            req.headers = [("Content-Type", "application/xml")]
            req.body = buf
            req.contentMD5 = Array(Insecure.MD5.hash(data: buf))
            return try client.send(req)
        }
    }

    /// `2026-12-03T09:04:48Z`.
    static func isoSeconds(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    /// Deletes every version (and delete marker) of each key, so nothing is left behind on a versioned bucket.
    /// Versions still under Object Lock stay: the key keeps reading as before (a delete marker hides an older
    /// version that would otherwise resurface), and the call ends with `repo.object-locked` naming them.
    func deleteEveryVersion(_ keys: [String]) throws {
        let wanted = Set(keys)
        var versions = Set<S3ObjectVersion>()
        for prefix in Self.listingPrefixes(for: keys) {
            versions.formUnion(try listVersions(prefix: prefix).filter { wanted.contains($0.key) })
        }
        let refused = try deleteVersions(versions.sorted { ($0.key, $0.versionId) < ($1.key, $1.versionId) })
        guard !refused.isEmpty else { return }
        let denied = refused.filter { $0.code == "AccessDenied" }
        var locked: [String] = []
        var until: Date?
        if let first = denied.first, let date = try retainUntil(first.version), date > client.clock.now() {
            locked = Array(Set(denied.map(\.version.key))).sorted()
            until = date
        }
        try hideResurfacing(locked: Set(locked), deleted: versions.subtracting(refused.map(\.version)))
        let failures = refused.filter { !locked.contains($0.version.key) }
        if !failures.isEmpty {
            throw CairnError(
                .repoIO,
                "DELETE in \(location): \(failures.count) object version(s) could not be deleted: "
                    + failures.prefix(5).map { "\($0.version.key): \($0.code)" }.joined(separator: ", "))
        }
        throw CairnError(
            .repoObjectLocked,
            "DELETE in \(location): \(locked.count) object(s) under Object Lock until \(Self.isoSeconds(until!)) or later were kept: "
                + locked.prefix(3).joined(separator: ", ") + (locked.count > 3 ? ", …" : ""),
            hint: "a locked object can be deleted once its retain-until date has passed; `cairn expire` does it then",
            cause: LockedObjects(keys: locked, until: until!))
    }

    /// The prefixes to list the versions of `keys` under: per folder, the longest prefix its keys share.
    static func listingPrefixes(for keys: [String]) -> [String] {
        var groups: [String: [String]] = [:]
        for k in keys {
            let folder = k.lastIndex(of: "/").map { String(k[...$0]) } ?? ""
            groups[folder, default: []].append(k)
        }
        return groups.values.map { names in
            names.dropFirst().reduce(names[0]) { p, k in String(p.commonPrefix(with: k)) }
        }.sorted()
    }

    /// Every version and delete marker under `prefix`.
    func listVersions(prefix: String) throws -> [S3ObjectVersion] {
        var out: [S3ObjectVersion] = []
        var keyMarker: String?
        var idMarker: String?
        let strip = settings.prefix.isEmpty ? 0 : settings.prefix.count + 1
        repeat {
            var req = S3Client.Request(method: "GET", key: nil)
            req.query = [("versions", ""), ("prefix", client.fullKey(prefix))]
            if let keyMarker { req.query.append(("key-marker", keyMarker)) }
            if let idMarker { req.query.append(("version-id-marker", idMarker)) }
            let r = try client.send(req)
            guard let xml = XMLElement.parse(r.body), xml.name == "ListVersionsResult" else {
                throw CairnError(
                    .repoProtocol, "LIST VERSIONS \(location): the endpoint's answer is not a ListVersionsResult")
            }
            for e in xml.children where e.name == "Version" || e.name == "DeleteMarker" {
                guard let k = e.text("Key"), k.count > strip, let id = e.text("VersionId") else { continue }
                out.append(
                    S3ObjectVersion(
                        key: String(k.dropFirst(strip)), versionId: id, isLatest: e.text("IsLatest") == "true",
                        isDeleteMarker: e.name == "DeleteMarker"))
            }
            let truncated = xml.text("IsTruncated") == "true"
            keyMarker = truncated ? xml.text("NextKeyMarker") : nil
            idMarker = truncated ? xml.text("NextVersionIdMarker") : nil
        } while keyMarker != nil
        return out
    }

    /// DeleteObjects by version id, in batches of 1000; returns the versions the store refused, with its code
    /// (a version already gone is not refused). What remains of the keys the store named in errors is listed again
    /// (one listing per folder, not per key): some servers (moto) name only the key, not the version, in a
    /// DeleteObjects error.
    func deleteVersions(_ versions: [S3ObjectVersion]) throws -> [(version: S3ObjectVersion, code: String)] {
        var codes: [String: String] = [:]
        for start in stride(from: 0, to: versions.count, by: 1000) {
            let batch = versions[start..<min(start + 1000, versions.count)]
            let objects = batch.map {
                "<Object><Key>\(XMLElement.escape(client.fullKey($0.key)))</Key><VersionId>\(XMLElement.escape($0.versionId))</VersionId></Object>"
            }
            for e in try deleteObjects(objects) where !["NoSuchKey", "NoSuchVersion"].contains(e.text("Code") ?? "") {
                guard let k = e.text("Key") else { continue }
                let strip = settings.prefix.isEmpty ? 0 : settings.prefix.count + 1
                codes[String(k.dropFirst(strip))] = e.text("Code") ?? "?"
            }
        }
        let sent = Dictionary(versions.map { ("\($0.key)\u{0}\($0.versionId)", $0) }) { a, _ in a }
        var refused: [(version: S3ObjectVersion, code: String)] = []
        guard !codes.isEmpty else { return [] }
        for prefix in Self.listingPrefixes(for: Array(codes.keys)) {
            for v in try listVersions(prefix: prefix) {
                if let code = codes[v.key], let original = sent["\(v.key)\u{0}\(v.versionId)"] {
                    refused.append((original, code))
                }
            }
        }
        return refused
    }

    /// One quiet DeleteObjects request for `objects` (`<Object>` elements); the `<Error>` elements of its answer.
    func deleteObjects(_ objects: [String]) throws -> [XMLElement] {
        let xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>" + objects.joined() + "</Delete>"
        let body = Array(xml.utf8)
        let r: HTTPResponse = try body.withUnsafeBytes { buf in
            var req = S3Client.Request(method: "POST", key: nil)
            req.query = [("delete", "")]
            req.headers = [("Content-Type", "application/xml")]
            req.body = buf
            req.contentMD5 = Array(Insecure.MD5.hash(data: buf))
            return try client.send(req)
        }
        return XMLElement.parse(r.body)?.all("Error") ?? []
    }

    /// A version's retain-until date (HEAD with its version id), nil when it has none.
    func retainUntil(_ v: S3ObjectVersion) throws -> Date? {
        var req = S3Client.Request(method: "HEAD", key: v.key)
        req.query = [("versionId", v.versionId)]
        req.accept = [404, 405]
        let r = try client.send(req)
        return r.headers["x-amz-object-lock-retain-until-date"].flatMap(S3Client.parseISODate)
    }

    /// Keys whose latest version went while an older one stayed locked would show that older content again: a
    /// delete marker (a plain DELETE) hides it, as the key's deletion intended.
    func hideResurfacing(locked: Set<String>, deleted: Set<S3ObjectVersion>) throws {
        let keys = Set(deleted.filter { $0.isLatest && !$0.isDeleteMarker && locked.contains($0.key) }.map(\.key))
        guard !keys.isEmpty else { return }
        _ = try deleteObjects(
            keys.sorted().map { "<Object><Key>\(XMLElement.escape(client.fullKey($0)))</Key></Object>" })
    }

    /// Whether the bucket has Object Lock and versioning enabled (GetObjectLockConfiguration, GetBucketVersioning).
    public func bucketProtection() throws -> S3BucketProtection {
        var lockReq = S3Client.Request(method: "GET", key: nil)
        lockReq.query = [("object-lock", "")]
        lockReq.accept = [404]
        let lock = try client.send(lockReq)
        let lockXML = XMLElement.parse(lock.body)
        if lock.status == 404, lockXML?.text("Code") == "NoSuchBucket" {
            throw client.mapHTTPError(lock, what: "GET \(location)?object-lock")
        }
        let enabled = lock.status == 200 && lockXML?.text("ObjectLockEnabled") == "Enabled"
        let rule = lockXML?.child("Rule")?.child("DefaultRetention")
        let retention = rule.flatMap { r in
            r.text("Mode").map { mode in
                [mode, r.text("Days").map { "\($0) days" }, r.text("Years").map { "\($0) years" }]
                    .compactMap { $0 }.joined(separator: " ")
            }
        }
        var versioningReq = S3Client.Request(method: "GET", key: nil)
        versioningReq.query = [("versioning", "")]
        let status = XMLElement.parse(try client.send(versioningReq).body)?.text("Status")
        return S3BucketProtection(
            objectLockEnabled: enabled, versioning: status.flatMap { $0.isEmpty ? nil : $0 },
            defaultRetention: retention)
    }
}
