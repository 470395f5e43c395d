#!/usr/bin/env python3
"""Run moto_server (moto 5.2.1) with two patches that make SigV4 enforcement usable for S3.

moto checks request signatures only once auth is switched on (POST "0" to
/moto-api/reset-auth, or env INITIAL_NO_AUTH_ACTION_COUNT=N). It then rebuilds the
canonical request on its side and compares signatures. Two flaws in that path make
correctly signing S3 clients fail:

1. moto rebuilds the request from the URL *after* werkzeug has percent-decoded it,
   so the client signed `prefix=a%2Fb` but moto hashes `prefix=a/b`. Every request
   with an encoded character in its query or key -- e.g. ListObjectsV2 with a
   prefix or delimiter containing '/' -- gets 403 SignatureDoesNotMatch.
   Patch: start from the request-URI exactly as it came over the wire (werkzeug's
   RAW_URI) and canonicalise it the way AWS does: every query key and value
   decoded and re-encoded (RFC 3986 unreserved characters stay, the rest becomes
   %XX), pairs sorted; for S3 the path too (S3 does not double-encode). So a
   request passes exactly when real S3 would accept its signature.

2. An S3 request without an Authorization header (anonymous, unsigned) crashes
   moto's check with a KeyError, i.e. HTTP 500, which clients retry.
   Patch: answer 403 AccessDenied, as real S3 does for anonymous access.

Not covered: presigned URLs (query-string auth) get 403 while auth is enforced.
Usage: the same arguments as moto_server, e.g. moto_sigv4.py -H 127.0.0.1 -p 5000
"""
import sys
from urllib.parse import quote, unquote, urlsplit

import moto
from moto.iam import access_control as ac
from moto.server import main

if moto.__version__ != "5.2.1":
    print(f"moto_sigv4.py: written for moto 5.2.1, found {moto.__version__}", file=sys.stderr)


def _aws_encode(text: str, safe: str = "") -> str:
    # quote() leaves A-Z a-z 0-9 - _ . ~ alone and writes %XX in upper case, as SigV4 wants.
    return quote(text, safe=safe)


def _canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")  # "?uploads" is signed as "uploads="
            pairs.append((_aws_encode(unquote(key)), _aws_encode(unquote(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


_moto_create_aws_request = ac.IAMRequestBase._create_aws_request


def _create_aws_request_from_raw_uri(self):
    request = _moto_create_aws_request(self)
    try:
        from flask import request as flask_request
        raw_uri = flask_request.environ.get("RAW_URI") or flask_request.environ.get("REQUEST_URI")
    except RuntimeError:  # no Flask request (moto used in-process, not as a server): keep moto's way
        return request
    if raw_uri:
        parts = urlsplit(raw_uri)
        path = parts.path or "/"
        if isinstance(self, ac.S3IAMRequest):
            # botocore's S3 signer takes the path verbatim, so hand it the canonical form.
            # (Other services' signers encode the path once more themselves, as AWS does.)
            path = _aws_encode(unquote(path), safe="/")
        request.url = path + ("?" + _canonical_query(parts.query) if parts.query else "")
    return request


ac.IAMRequestBase._create_aws_request = _create_aws_request_from_raw_uri


_moto_s3_init = ac.S3IAMRequest.__init__  # inherited from IAMRequestBase


def _s3_init_anonymous_gets_403(self, account_id, method, path, data, body, headers, action):
    if "Authorization" not in headers:
        self._data = data  # _raise_access_denied() reads the bucket name from it
        self._raise_access_denied()
    _moto_s3_init(self, account_id, method, path, data, body, headers, action)


ac.S3IAMRequest.__init__ = _s3_init_anonymous_gets_403

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
