import CCurl
import CairnBase
import Foundation

/// One HTTP exchange as the S3 client sees it.
struct HTTPResponse {
    var status: Int
    /// Header names lowercased; the last value wins.
    var headers: [String: String]
    /// The body when it was collected (error responses and small bodies); streamed bodies are not kept.
    var body: [UInt8]
}

/// The result of one attempt at the transport level.
enum TransportOutcome {
    case response(HTTPResponse)
    /// curl failed before a complete response arrived (connect, TLS, timeout, reset).
    case failure(code: CURLcode, message: String)
}

/// Runs HTTP requests with libcurl easy handles, reusing handles (and so connections) across requests.
/// Blocking: call from dedicated threads.
final class CurlTransport: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [UnsafeMutableRawPointer] = []
    private let caFile: String?
    private let verifyTLS: Bool
    private let connectTimeout: Double
    private let stallTimeout: Double

    /// Opens and initialises libcurl once, on the first request: nil when ready, otherwise the error to report.
    private static let loaded: CairnError? = {
        if let why = ccurl_load() {
            return CairnError(
                .repoUnreachable, "cannot load libcurl, which S3 repositories need: \(String(cString: why))",
                hint: "install it: apt-get install libcurl4")
        }
        let rc = curl_global_init(Int(CURL_GLOBAL_ALL))
        return rc == CURLE_OK
            ? nil : CairnError(.internal, "libcurl failed to initialise: \(String(cString: curl_easy_strerror(rc)))")
    }()

    init(caFile: String?, verifyTLS: Bool, connectTimeout: Double, stallTimeout: Double) {
        self.caFile = caFile
        self.verifyTLS = verifyTLS
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }

    deinit {
        for h in idle { curl_easy_cleanup(h) }
    }

    /// Where the response body goes.
    enum BodySink {
        /// Keep the body in `HTTPResponse.body`.
        case collect
        /// Stream 2xx bodies to the closure; other bodies are collected for the error message. `onHeaders`
        /// receives the response headers before the first body byte.
        case stream((UnsafeRawBufferPointer) throws -> Void, onHeaders: ([String: String]) -> Void)
    }

    /// Per-transfer state shared with curl's C callbacks.
    private final class Transfer {
        var upload: UnsafeRawBufferPointer?
        var uploadOffset = 0
        var status = 0
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        var sink: ((UnsafeRawBufferPointer) throws -> Void)?
        var onHeaders: (([String: String]) -> Void)?
        var sinkError: (any Error)?
        var delivered: Int64 = 0

        /// The transfer a callback's user data points at.
        static func from(_ ud: UnsafeMutableRawPointer?) -> Transfer {
            Unmanaged<Transfer>.fromOpaque(ud!).takeUnretainedValue()
        }

        /// Copies up to `max` bytes of the upload body to `ptr`; returns how many (0 at the end).
        func read(into ptr: UnsafeMutableRawPointer?, max: Int) -> Int {
            guard let up = upload else { return 0 }
            let n = min(max, up.count - uploadOffset)
            if n > 0 {
                memcpy(ptr!, up.baseAddress! + uploadOffset, n)
                uploadOffset += n
            }
            return n
        }

        /// Takes body bytes: a success streams to the sink, other bodies are collected. Returns the bytes taken
        /// (0 aborts the transfer, after a sink error).
        func write(_ buf: UnsafeRawBufferPointer) -> Int {
            if (200..<300).contains(status), let sink {
                if let h = onHeaders {
                    h(headers)
                    onHeaders = nil
                }
                do { try sink(buf) } catch {
                    sinkError = error
                    return 0
                }
                delivered += Int64(buf.count)
            } else if (200..<300).contains(status) || body.count < 65536 {
                // Collected bodies (listings, XML results) are kept whole; error bodies are capped at 64 KiB.
                body.append(contentsOf: buf)
            }
            return buf.count
        }

        /// Takes one header line: a status line starts a new header block.
        func header(_ line: String) {
            if line.hasPrefix("HTTP/") {
                // A new status line (after 100 Continue or a redirect) starts a new header block.
                let parts = line.split(separator: " ")
                status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                headers = [:]
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                headers[name] = value
            }
        }
    }

    /// Performs one attempt.
    /// - Parameters:
    ///   - timeout: seconds the whole attempt may take.
    ///   - delivered: on return, how many body bytes reached a streaming sink (for resuming).
    func perform(
        method: String, url: String, headers: [(String, String)], body: UnsafeRawBufferPointer?,
        sink: BodySink, timeout: Double, delivered: inout Int64
    ) throws -> TransportOutcome {
        if let e = CurlTransport.loaded { throw e }
        guard let h = acquire() else { throw CairnError(.internal, "cannot create a curl handle") }
        var keep = true
        defer { release(h, keep: keep) }

        let t = Transfer()
        t.upload = body
        if case .stream(let f, let h) = sink {
            t.sink = f
            t.onHeaders = h
        }
        setConnectionOptions(h, url: url, timeout: timeout)
        setMethod(h, method, bodySize: body?.count ?? 0)
        let list = headerList(headers, method: method)
        defer { curl_slist_free_all(list) }
        ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, list)
        setCallbacks(h, t)

        let rc = withExtendedLifetime(t) { curl_easy_perform(h) }
        delivered = t.delivered
        if let e = t.sinkError { throw e }
        if rc != CURLE_OK {
            keep = false
            let msg = String(cString: curl_easy_strerror(rc))
            return .failure(code: rc, message: msg)
        }
        var status = 0
        ccurl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return .response(HTTPResponse(status: status, headers: t.headers, body: t.body))
    }

    /// The URL, timeouts (whole attempt, connect, stall), keep-alive and TLS verification.
    private func setConnectionOptions(_ h: UnsafeMutableRawPointer, url: String, timeout: Double) {
        ccurl_setopt_str(h, CURLOPT_URL, url)
        ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeout * 1000))
        ccurl_setopt_long(h, CURLOPT_TIMEOUT_MS, max(1, Int(timeout * 1000)))
        // A server that sends nothing for stallTimeout seconds is treated as hung.
        ccurl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1)
        ccurl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, max(1, Int(stallTimeout)))
        ccurl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        ccurl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, verifyTLS ? 1 : 0)
        ccurl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, verifyTLS ? 2 : 0)
        if let caFile { ccurl_setopt_str(h, CURLOPT_CAINFO, caFile) }
    }

    /// The HTTP method, with the body's size for uploads.
    private func setMethod(_ h: UnsafeMutableRawPointer, _ method: String, bodySize: Int) {
        switch method {
        case "GET": ccurl_setopt_long(h, CURLOPT_HTTPGET, 1)
        case "HEAD": ccurl_setopt_long(h, CURLOPT_NOBODY, 1)
        case "PUT":
            ccurl_setopt_long(h, CURLOPT_UPLOAD, 1)
            ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(bodySize))
        case "POST":
            ccurl_setopt_long(h, CURLOPT_POST, 1)
            ccurl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bodySize))
        default:
            ccurl_setopt_str(h, CURLOPT_CUSTOMREQUEST, method)
        }
    }

    /// The request headers as curl's list (the caller frees it), without the headers curl would add by itself.
    private func headerList(_ headers: [(String, String)], method: String) -> UnsafeMutablePointer<curl_slist>? {
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (k, v) in headers { list = curl_slist_append(list, "\(k): \(v)") }
        // No "Expect: 100-continue" round trip; our signature does not cover it, and some servers never answer it.
        list = curl_slist_append(list, "Expect:")
        if method == "PUT" || method == "POST" { list = curl_slist_append(list, "Transfer-Encoding:") }
        return list
    }

    /// Points curl's read, write and header callbacks at `t`.
    private func setCallbacks(_ h: UnsafeMutableRawPointer, _ t: Transfer) {
        ccurl_setopt_readfn(h) { ptr, size, nitems, ud in Transfer.from(ud).read(into: ptr, max: size * nitems) }
        ccurl_setopt_writefn(h) { ptr, size, nmemb, ud in
            Transfer.from(ud).write(UnsafeRawBufferPointer(start: ptr, count: size * nmemb))
        }
        ccurl_setopt_headerfn(h) { ptr, size, nmemb, ud in
            let n = size * nmemb
            Transfer.from(ud).header(String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self))
            return n
        }
        let ud = Unmanaged.passUnretained(t).toOpaque()
        ccurl_setopt_ptr(h, CURLOPT_READDATA, ud)
        ccurl_setopt_ptr(h, CURLOPT_WRITEDATA, ud)
        ccurl_setopt_ptr(h, CURLOPT_HEADERDATA, ud)
    }

    private func acquire() -> UnsafeMutableRawPointer? {
        lock.lock()
        let reused = idle.popLast()
        lock.unlock()
        if let h = reused {
            curl_easy_reset(h)
            return h
        }
        return curl_easy_init()
    }

    private func release(_ h: UnsafeMutableRawPointer, keep: Bool) {
        if keep {
            lock.lock()
            idle.append(h)
            lock.unlock()
        } else {
            curl_easy_cleanup(h)
        }
    }
}
