#!/usr/bin/env python3
"""fault_proxy.py -- a fault-injecting HTTP/1.1 proxy for Cairn's S3 integration tests.

    python3 scripts/fault_proxy.py --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT [--port-file FILE] [--quiet]

Sits on loopback in front of a plain-HTTP S3 emulator (moto_server). Requests go upstream
byte-for-byte (request line, headers incl. Host, body: SigV4 signatures stay valid), each on a
fresh upstream connection; the response is read completely, then written to the client as is or
damaged by a scripted fault. Client connections are kept alive unless a fault or the client ends them.

Control API on the same port (never forwarded, never logged):
  POST /__fault/script  a JSON rule or list of rules, appended (all or none: 400 if one is invalid)
        {"match": {"method": "GET", "path_regex": "...", "query_regex": "..."},   # all optional
         "times": 1, "skip": 0, "action": {...}}
      The regexes are re.search()ed on the raw (percent-encoded) path and on the query without '?'.
      Each request consumes the first rule that matches and is not used up: while the rule's skip
      lasts the request passes untouched, then the action applies `times` times (< 0: forever).
  GET  /__fault/log     [{method, path, query, range, if_match, rule, action, status_sent,
                          upstream_status, body_bytes_sent, time, error?}, ...] per proxied request
  GET  /__fault/rules   the rules with their remaining skip/times;  POST /__fault/reset: clear all
Actions (one kind per rule; "delay_seconds" may be added to any):
  {"status": 503, "code": "SlowDown", "message": "...", "headers": {...}}  S3 XML error, no upstream
  {"reset_after_bytes": N}          upstream headers + first N body bytes, then TCP RST
  {"truncate_after_bytes": N}       upstream headers + first N body bytes, then FIN
  {"stall_seconds": S}              no upstream; send nothing for S s, then FIN
  {"stall_after_bytes": N, "stall_seconds": S}  headers + N body bytes, silence for S s, then FIN
  {"delay_seconds": S}              wait S s, then forward normally
  {"drop_request": true}            read the request, close (FIN) without answering
  {"forward_then_status": 500, "code": ..., "message": ...}  forward, answer an S3 error instead
  {"ignore_if_none_match": true}    forward; if upstream refuses an If-None-Match write (412), answer 200
                                    with the ETag of the body (from Content-MD5): a store that acknowledges a
                                    create-only write over an existing object. (The header is signed by SigV4,
                                    so it cannot be stripped; the object keeps its old bytes.)
  {}                                forward normally (just logged with the rule's index)
N counts raw body bytes after the response head (for a chunked response incl. the chunk framing).
"""
import argparse, asyncio, base64, contextlib, fcntl, json, os, pathlib, re, signal, socket, struct, sys, termios, time
from http import HTTPStatus
from xml.sax.saxutils import escape

TIMEOUT = 60.0          # every wait on upstream (and on a client mid-request) ends after this
IDLE_TIMEOUT = 600.0    # a keep-alive client connection idle this long is closed
HEAD_LIMIT = 1 << 20    # max size of a request/response head
DEFAULT_CODES = {400: "InvalidRequest", 403: "AccessDenied", 404: "NoSuchKey", 408: "RequestTimeout",
                 409: "OperationAborted", 412: "PreconditionFailed", 416: "InvalidRange", 429: "SlowDown",
                 500: "InternalError", 501: "NotImplemented", 502: "BadGateway", 503: "SlowDown"}
KINDS = ("status", "reset_after_bytes", "truncate_after_bytes", "stall_after_bytes", "drop_request",
         "forward_then_status", "ignore_if_none_match")
ACTION_KEYS = set(KINDS) | {"stall_seconds", "delay_seconds", "code", "message", "headers"}
QUIET = False


def note(msg):
    if not QUIET:
        print(f"[fault_proxy] {msg}", file=sys.stderr, flush=True)


class Message:
    """A parsed request or response head; `raw` is the head exactly as received (incl. CRLFCRLF)."""
    def __init__(self, raw):
        self.raw = raw
        lines = raw[:-4].decode("latin-1").split("\r\n")
        self.first = lines[0].split(" ", 2)
        self.headers = {}                                  # lower-case name -> value (repeats joined)
        for name, _, value in (line.partition(":") for line in lines[1:]):
            key = name.strip().lower()
            self.headers[key] = (self.headers[key] + ", " if key in self.headers else "") + value.strip()

    def wants_close(self):                                 # for a request
        conn = self.headers.get("connection", "").lower()
        return "close" in conn or (self.first[2] == "HTTP/1.0" and "keep-alive" not in conn)

    def without(self, name):
        """The raw head minus the header lines called `name` (lower case)."""
        lines = self.raw[:-4].split(b"\r\n")
        keep = [ln for ln in lines[1:] if ln.split(b":", 1)[0].strip().lower() != name.encode()]
        return b"\r\n".join(lines[:1] + keep) + b"\r\n\r\n"


async def timed(aw, timeout=TIMEOUT):
    return await asyncio.wait_for(aw, timeout)


async def read_body(reader, msg, until_eof):
    """The body exactly as it is on the wire (chunked framing and trailers kept)."""
    if "chunked" in msg.headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            parts.append(await timed(reader.readuntil(b"\r\n")))
            size = int(parts[-1].split(b";")[0].strip(), 16)
            if size == 0:                                  # trailers up to the empty line
                while parts[-1] != b"\r\n":
                    parts.append(await timed(reader.readuntil(b"\r\n")))
                return b"".join(parts)
            parts.append(await timed(reader.readexactly(size + 2)))
    if "content-length" in msg.headers:
        return await timed(reader.readexactly(int(msg.headers["content-length"])))
    # no length: a request has no body, a response runs until the upstream closes
    return await timed(reader.read()) if until_eof else b""


def check_keys(obj, allowed, what):
    if not isinstance(obj, dict) or set(obj) - allowed:
        raise ValueError(f"{what} must be an object with keys from {sorted(allowed)}, got {obj!r}")


class Rule:
    def __init__(self, spec, index):
        check_keys(spec, {"match", "times", "skip", "action"}, "a rule")
        match, self.action = spec.get("match") or {}, spec.get("action")
        check_keys(match, {"method", "path_regex", "query_regex"}, "match")
        check_keys(self.action, ACTION_KEYS, "action")
        self.index, self.spec = index, spec
        self.method = match.get("method", "").upper() or None
        self.path_re, self.query_re = (re.compile(match[k]) if match.get(k) is not None else None
                                       for k in ("path_regex", "query_regex"))
        self.times, self.skip = int(spec.get("times", 1)), int(spec.get("skip", 0))
        a = self.action
        kinds = [k for k in KINDS if k in a]
        kinds += ["stall_seconds"] if "stall_seconds" in a and "stall_after_bytes" not in a else []
        if len(kinds) > 1 or ("stall_after_bytes" in a and "stall_seconds" not in a):
            raise ValueError(f"one action kind per rule (stall_after_bytes needs stall_seconds), got {a!r}")
        for key in set(a) - {"code", "message", "headers", "drop_request", "ignore_if_none_match"}:    # the numbers
            low, high = (200, 599) if key in ("status", "forward_then_status") else (0, 1e12)
            if not isinstance(a[key], (int, float)) or not low <= a[key] <= high:
                raise ValueError(f"{key} must be a number in [{low}, {high:g}], got {a[key]!r}")

    def matches(self, method, path, query):
        return ((self.times != 0 or self.skip > 0) and self.method in (None, method)
                and (self.path_re is None or self.path_re.search(path) is not None)
                and (self.query_re is None or self.query_re.search(query) is not None))

RULES, LOG = [], []     # the fault script and the request log (one event loop: no locking needed)


def pick(method, path, query):
    """(rule index, action) for this request; action None if no rule applies or it is skipping."""
    for rule in RULES:
        if rule.matches(method, path, query):
            if rule.skip > 0:
                rule.skip -= 1
                return rule.index, None
            rule.times -= rule.times > 0
            return rule.index, rule.action
    return None, None


def response(status, body, content_type, method, extra=None):
    """A complete response: head + body (no body for HEAD)."""
    reason = {s.value: s.phrase for s in HTTPStatus}.get(status, "Injected Fault")
    headers = {"Content-Type": content_type, "Content-Length": str(0 if method == "HEAD" else len(body)),
               "x-amz-request-id": "faultproxy", "Server": "fault_proxy",
               "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())}
    headers.update({str(k): str(v) for k, v in (extra or {}).items()})
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + (b"" if method == "HEAD" else body)


def s3_error(status, action, method):
    code = action.get("code") or DEFAULT_CODES.get(status, "InjectedFault")
    message = action.get("message") or f"fault_proxy injected {status} {code}"
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(str(code))}</Code>'
            f'<Message>{escape(str(message))}</Message><RequestId>faultproxy</RequestId></Error>')
    return response(status, body.encode(), "application/xml", method, action.get("headers"))


async def send_all(writer, data):
    """Write and wait until everything has left asyncio's buffer (is in the kernel)."""
    writer.transport.set_write_buffer_limits(0)
    writer.write(data)
    await timed(writer.drain())


async def send_rst(writer):
    """Abort with a TCP RST once the client has acknowledged every byte sent (so it got them)."""
    sock, buf, deadline = writer.get_extra_info("socket"), bytearray(4), time.monotonic() + 5
    # SIOCOUTQ (Linux): bytes in the send queue not yet acked; poll it down to 0 (5 s at most)
    while fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf) == 0 and struct.unpack("i", buf)[0] \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()                               # close() with linger 0 => RST


async def forward(upstream, req, body):
    """Send the request upstream on a new connection; return (response head, raw body, ends-by-close)."""
    reader, writer = await timed(asyncio.open_connection(*upstream, limit=HEAD_LIMIT))
    try:
        writer.write(req.raw + body)
        await timed(writer.drain())
        head = Message(await timed(reader.readuntil(b"\r\n\r\n")))
        while 100 <= int(head.first[1]) < 200:             # skip interim 1xx (e.g. 100 Continue)
            head = Message(await timed(reader.readuntil(b"\r\n\r\n")))
        if req.first[0] == "HEAD" or int(head.first[1]) in (204, 304):
            return head, b"", False
        framed = "chunked" in head.headers.get("transfer-encoding", "").lower() or "content-length" in head.headers
        return head, await read_body(reader, head, until_eof=True), not framed
    finally:
        writer.close()


async def proxy(upstream, req, body, writer):
    """Handle one proxied request; returns 'keep', 'close' (FIN) or 'abort' (already reset)."""
    method, target = req.first[0], req.first[1]
    path, _, query = target.partition("?")
    if "://" in path:                                      # absolute-form request-target
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    index, action = pick(method, path, query)
    entry = {"method": method, "path": path, "query": query, "range": req.headers.get("range"),
             "if_match": req.headers.get("if-match"), "rule": index, "action": action,
             "status_sent": None, "upstream_status": None, "body_bytes_sent": None, "time": time.time()}
    LOG.append(entry)
    a, keep = action or {}, "close" if req.wants_close() else "keep"

    async def error(status, act):
        entry["status_sent"] = status
        await send_all(writer, s3_error(status, act, method))
    try:
        if a.get("delay_seconds"):
            await asyncio.sleep(a["delay_seconds"])
        if a.get("drop_request"):
            return "close"
        if "status" in a:
            await error(int(a["status"]), a)
            return keep
        if "stall_seconds" in a and "stall_after_bytes" not in a:
            await asyncio.sleep(a["stall_seconds"])
            return "close"
        try:
            head, rbody, by_close = await forward(upstream, req, body)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError) as exc:
            entry["error"] = f"upstream: {exc!r}"
            await error(502, {"message": f"fault_proxy: upstream failed: {exc!r}"})
            return "close"
        entry["upstream_status"] = int(head.first[1])
        if "forward_then_status" in a:
            await error(int(a["forward_then_status"]), a)
            return keep
        if a.get("ignore_if_none_match") and entry["upstream_status"] == 412 and "if-none-match" in req.headers:
            etag = base64.b64decode(req.headers.get("content-md5", "")).hex()
            entry["status_sent"] = 200
            await send_all(writer, response(200, b"", "application/xml", method, {"ETag": f'"{etag}"'}))
            return keep
        cut = next((int(a[k]) for k in ("reset_after_bytes", "truncate_after_bytes", "stall_after_bytes")
                    if k in a), None)
        entry["status_sent"] = entry["upstream_status"]
        entry["body_bytes_sent"] = len(rbody) if cut is None else min(cut, len(rbody))
        # moto (werkzeug) says "Connection: close" on every response. That concerns the proxy's
        # upstream hop only, so drop it from a framed response and keep the client connection.
        raw_head = head.raw if by_close else head.without("connection")
        await send_all(writer, raw_head + (rbody if cut is None else rbody[:cut]))
        if cut is None:
            return "close" if by_close else keep
        if "reset_after_bytes" in a:
            await send_rst(writer)
            return "abort"
        if "stall_after_bytes" in a:
            await asyncio.sleep(a["stall_seconds"])
        return "close"
    finally:
        note(f"{method} {target} rule={index} action={json.dumps(action)} -> {entry['status_sent']}")


async def control(req, body, writer):
    """The /__fault/ API."""
    method, path = req.first[0], req.first[1].partition("?")[0]
    status, result = 200, None
    try:
        if (method, path) == ("POST", "/__fault/script"):
            specs = json.loads(body or b"[]")
            specs = specs if isinstance(specs, list) else [specs]
            rules = [Rule(spec, len(RULES) + i) for i, spec in enumerate(specs)]
            RULES.extend(rules)                            # only once every rule parsed
            result = {"added": len(rules), "rules": len(RULES)}
        elif (method, path) == ("GET", "/__fault/log"):
            result = LOG
        elif (method, path) == ("GET", "/__fault/rules"):
            result = [dict(r.spec, index=r.index, times=r.times, skip=r.skip) for r in RULES]
        elif (method, path) == ("POST", "/__fault/reset"):
            del RULES[:], LOG[:]
            result = {"reset": True}
        else:
            status, result = 404, {"error": f"no control endpoint {method} {path}"}
    except (ValueError, TypeError, re.error) as exc:      # bad JSON, bad rule, bad regex
        status, result = 400, {"error": str(exc)}
    if status != 200:
        note(f"control {method} {path} -> {status} {result}")
    await send_all(writer, response(status, json.dumps(result).encode(), "application/json", method))
    return "close" if req.wants_close() else "keep"


async def handle_client(upstream, reader, writer):
    outcome = "close"
    try:
        while True:
            try:
                req = Message(await timed(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT))
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                break                                      # client went away / idle
            if len(req.first) != 3:
                await send_all(writer, response(400, b"bad request line", "text/plain", "GET"))
                break
            if "100-continue" in req.headers.get("expect", "").lower():
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")   # we take the whole body first
            body = await read_body(reader, req, until_eof=False)
            if req.first[1].startswith("/__fault/"):
                outcome = await control(req, body, writer)
            else:
                outcome = await proxy(upstream, req, body, writer)
            if outcome != "keep":
                break
    except asyncio.CancelledError:                         # shutdown; swallowed, else 3.11 logs it
        pass
    except Exception as exc:                               # client vanished mid-request, bad framing...
        note(f"connection ended: {exc!r}")
    finally:
        if outcome != "abort":
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()                     # FIN once the buffer is flushed
                writer.close()
                await timed(writer.wait_closed(), 5)


def host_port(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main():
    global QUIET
    ap = argparse.ArgumentParser(description="fault-injecting HTTP/1.1 proxy (see the module docstring)")
    ap.add_argument("--listen", required=True, type=host_port, help="HOST:PORT to listen on (port 0: any)")
    ap.add_argument("--upstream", required=True, type=host_port, help="HOST:PORT of the plain-HTTP upstream")
    ap.add_argument("--port-file", help="write the listening port here (atomically)")
    ap.add_argument("--quiet", action="store_true", help="no per-request lines on stderr")
    args = ap.parse_args()
    QUIET = args.quiet
    server = await asyncio.start_server(lambda r, w: handle_client(args.upstream, r, w),
                                        *args.listen, limit=HEAD_LIMIT, reuse_address=True)
    host, port = server.sockets[0].getsockname()[:2]
    if args.port_file:                                     # temp file + rename: readers never see half
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        pathlib.Path(tmp).write_text(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()                  # stop accepting; asyncio.run() then cancels open connections
    note("stopped")


if __name__ == "__main__":
    asyncio.run(main())
