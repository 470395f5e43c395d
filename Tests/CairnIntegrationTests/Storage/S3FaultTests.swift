import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnStorage

/// The S3 driver against injected faults: it retries what is retryable, resumes broken downloads, respects its
/// deadlines, and never reports success for an object that is not fully stored.
@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct S3FaultTests {
    func repo(_ proxy: FaultProxy, deadline: Double = 30, retries: Int = 5) -> S3Repository {
        var s = TestEnvironment.s3Settings()
        s.endpoint = proxy.endpoint
        s.requestDeadline = deadline
        s.maxRetries = retries
        s.stallTimeout = 2
        return S3Repository(settings: s)
    }

    static func bytes(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) } }

    @Test func downloadsResumeAfterAConnectionResetMidBody() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy)
        let data = Self.bytes(3 << 20)
        try r.put("resume/obj", data, options: .overwrite)
        try proxy.script(
            #"[{"match": {"method": "GET", "path_regex": "resume/obj"}, "times": 2, "action": {"reset_after_bytes": 700000}}]"#
        )
        #expect(try r.getBytes("resume/obj") == data)
        let gets = try proxy.log().filter { ($0["method"] as? String) == "GET" }
        #expect(gets.count == 3)
        // The resumed requests asked for the rest only, guarded by the first response's ETag.
        #expect((gets[1]["range"] as? String) == "bytes=700000-")
        #expect((gets[2]["range"] as? String) == "bytes=1400000-")
        #expect((gets[1]["if_match"] as? String)?.isEmpty == false)
    }

    @Test func truncatedBodiesAreResumedToo() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy)
        let data = Self.bytes(1 << 20)
        try r.put("trunc/obj", data, options: .overwrite)
        try proxy.script(#"[{"match": {"method": "GET"}, "action": {"truncate_after_bytes": 1000}}]"#)
        var got = [UInt8]()
        try r.get("trunc/obj", range: ByteRange(start: 10, end: 500_010)) { got.append(contentsOf: $0) }
        #expect(got == Array(data[10..<500_010]))
    }

    @Test func serverErrorsAndThrottlingAreRetried() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy)
        try proxy.script(
            #"""
            [{"match": {"method": "PUT"}, "times": 2, "action": {"status": 503, "code": "SlowDown"}},
             {"match": {"method": "GET"}, "times": 1, "action": {"status": 500}},
             {"match": {"method": "GET"}, "times": 1, "action": {"drop_request": true}}]
            """#)
        try r.put("retry/obj", [1, 2, 3], options: .createOnly)
        #expect(try r.getBytes("retry/obj") == [1, 2, 3])
        let statuses = try proxy.log().compactMap { $0["status_sent"] as? Int }
        #expect(statuses.filter { $0 == 503 }.count == 2)
        #expect(statuses.contains(500))
    }

    @Test func errorsThatRetryingCannotFixAreNotRetried() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy)
        try proxy.script(
            #"[{"match": {"method": "GET"}, "times": 5, "action": {"status": 403, "code": "AccessDenied"}}]"#)
        let e = #expect(throws: CairnError.self) { _ = try r.getBytes("any") }
        #expect(e?.code == .repoAccessDenied)
        #expect(try proxy.log().count == 1)
    }

    @Test func aStalledServerIsAbandonedWithinTheDeadline() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy, deadline: 6, retries: 10)
        try r.put("stall/obj", Self.bytes(200_000), options: .overwrite)
        try proxy.script(
            #"[{"match": {"method": "GET"}, "times": -1, "action": {"stall_after_bytes": 100, "stall_seconds": 30}}]"#)
        let start = Date()
        let e = #expect(throws: CairnError.self) { _ = try r.getBytes("stall/obj") }
        #expect(e?.code == .repoTimeout || e?.code == .repoIO)
        #expect(Date().timeIntervalSince(start) < 12)
    }

    /// The PUT reached the store but its acknowledgement was lost: the create-only retry finds the object, and
    /// the driver accepts it only because it holds exactly the bytes sent.
    @Test func aLostAcknowledgementOfACreateOnlyWriteIsRecognised() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy)
        try proxy.script(#"[{"match": {"method": "PUT"}, "times": 1, "action": {"forward_then_status": 500}}]"#)
        try r.put("lost/ack", [4, 5, 6], options: .createOnly)
        #expect(try r.getBytes("lost/ack") == [4, 5, 6])
        // Different content under the same key is still refused.
        let e = #expect(throws: CairnError.self) { try r.put("lost/ack", [7], options: .createOnly) }
        #expect(e?.code == .repoObjectExists)
    }

    @Test func aLostAcknowledgementOfAMultipartCompletionIsRecognised() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy)
        try proxy.script(
            #"[{"match": {"method": "POST", "query_regex": "uploadId="}, "times": 1, "action": {"forward_then_status": 500}}]"#
        )
        let data = Self.bytes(11 << 20)
        let w = try r.makeWriter("lost/multipart", options: .createOnly)
        try data.withUnsafeBytes { try w.write($0) }
        _ = try w.finish()
        #expect(try r.getBytes("lost/multipart") == data)
    }

    /// Part uploads that fail for good abort the upload: nothing becomes visible.
    @Test func aFailingPartAbortsTheUpload() throws {
        let proxy = try FaultProxy()
        let r = repo(proxy, deadline: 5, retries: 2)
        try proxy.script(
            #"[{"match": {"method": "PUT", "query_regex": "partNumber=2"}, "times": -1, "action": {"status": 500}}]"#)
        let w = try r.makeWriter("broken/multipart", options: .overwrite)
        let e = #expect(throws: CairnError.self) {
            try Self.bytes(16 << 20).withUnsafeBytes { try w.write($0) }
            _ = try w.finish()
        }
        #expect(e != nil)
        w.abort()
        #expect(try r.head("broken/multipart") == nil)
        #expect(try proxy.log().contains { ($0["method"] as? String) == "DELETE" })
    }
}
