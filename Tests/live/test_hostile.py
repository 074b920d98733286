"""A table of malformed and hostile requests against one live perfgate: each gets its documented
status and a message that says what was wrong, the process survives them all, and none of them
changes what /metrics shows."""
import gzip
import json

from exposition import value

J = {"Content-Type": "application/json"}
ND = {"Content-Type": "application/x-ndjson"}
E = '{"endpoint": "/a", "stages": {"backend_fetch": 1}}'
def ev(**fields):
    base = {"endpoint": "/a", "stages": {"backend_fetch": 1}}
    base.update(fields)
    return json.dumps(base)
# (case, method, path, headers, body, status, words the error must contain)
CASES = [
    ("truncated object", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": 1', 400, 'unexpected end of input'),
    ("truncated string", "POST", "/v1/events", J, b'{"endpoint": "/a', 400, 'unterminated string'),
    ("truncated escape", "POST", "/v1/events", J, b'{"endpoint": "/a\\', 400, 'unterminated string'),
    ("truncated unicode escape", "POST", "/v1/events", J, b'{"endpoint": "\\u12', 400, r'\u escape needs four hex digits'),
    ("lone bracket", "POST", "/v1/events", J, b"[", 400, 'unexpected end of input, expected a value'),
    ("closing bracket", "POST", "/v1/events", J, b"]", 400, "unexpected ']'"),
    ("deep arrays", "POST", "/v1/events", J, b"[" * 100000, 400, 'nesting deeper than 64 levels'),
    ("deep objects in a field", "POST", "/v1/events", J, ('{"endpoint": "/a", "stages": {"x": 1}, "extra": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}").encode(), 400, 'nesting deeper than 64 levels'),
    ("deep arrays in the batch", "POST", "/v1/events", J, b"[" + b"[" * 70 + b"]" * 70 + b"]", 400, 'nesting deeper than 64 levels'),
    ("huge exponent", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": 1e999999999}}', 422, 'stages.x: must be at most 86400 seconds (got 1e999999999)'),
    ("ten thousand digits", "POST", "/v1/events", J, ('{"endpoint": "/a", "stages": {"x": ' + "9" * 10000 + "}}").encode(), 422, 'stages.x: must be at most 86400 seconds'),
    ("leading zeros", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": 01}}', 400, 'numbers must not have leading zeros'),
    ("plus sign", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": +1}}', 400, "unexpected '+', expected a value"),
    ("hex number", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": 0x10}}', 400, "found 'x'"),
    ("bare dot", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": .5}}', 400, "unexpected '.', expected a value"),
    ("duplicate endpoint", "POST", "/v1/events", J, b'{"endpoint": "/a", "endpoint": "/b", "stages": {"x": 1}}', 422, 'endpoint: appears more than once'),
    ("duplicate stage", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": 1, "x": 2}}', 422, 'stages.x: appears more than once'),
    ("duplicate wrapper", "POST", "/v1/events", J, b'{"events": [], "events": []}', 400, '"events" appears more than once'),
    ("endpoint number", "POST", "/v1/events", J, b'{"endpoint": 1, "stages": {"x": 1}}', 422, 'endpoint: must be a string, got a number'),
    ("endpoint null", "POST", "/v1/events", J, b'{"endpoint": null, "stages": {"x": 1}}', 422, 'endpoint: must be a string, got null'),
    ("stages array", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": [1]}', 422, 'stages: must be an object of stage name to seconds, got an array'),
    ("stage boolean", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": true}}', 422, 'stages.x: must be a number of seconds, got a boolean'),
    ("timestamp object", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": 1}, "timestamp": {}}', 422, 'timestamp: must be an RFC 3339 string or Unix seconds, got an object'),
    ("invalid utf-8 value", "POST", "/v1/events", J, b'{"endpoint": "\xc3\x28", "stages": {"x": 1}}', 400, 'line 1, column 14: string is not valid UTF-8'),
    ("invalid utf-8 key", "POST", "/v1/events", J, b'{"\xff": 1}', 400, 'line 1, column 2: string is not valid UTF-8'),
    ("overlong utf-8", "POST", "/v1/events", J, b'{"endpoint": "\xc0\xaf", "stages": {"x": 1}}', 400, 'string is not valid UTF-8'),
    ("utf-16 surrogate in utf-8", "POST", "/v1/events", J, b'{"endpoint": "\xed\xa0\x80", "stages": {"x": 1}}', 400, 'string is not valid UTF-8'),
    ("raw NUL in a string", "POST", "/v1/events", J, b'{"endpoint": "/a\x00", "stages": {"x": 1}}', 400, 'control character byte 0x00 inside a string'),
    ("NUL outside strings", "POST", "/v1/events", J, b'{"endpoint": "/a",\x00 "stages": {"x": 1}}', 400, 'found byte 0x00'),
    ("escaped NUL in a label", "POST", "/v1/events", J, b'{"endpoint": "/a\\u0000", "stages": {"x": 1}}', 422, 'endpoint: must not contain control characters (found U+0000'),
    ("unpaired surrogate escape", "POST", "/v1/events", J, b'{"endpoint": "\\ud800", "stages": {"x": 1}}', 400, 'unpaired UTF-16 surrogate'),
    ("invalid escape", "POST", "/v1/events", J, b'{"endpoint": "\\x41", "stages": {"x": 1}}', 400, r'invalid escape \x in string'),
    ("byte order mark", "POST", "/v1/events", J, b"\xef\xbb\xbf" + E.encode(), 400, 'unexpected byte 0xEF, expected a value'),
    ("trailing garbage", "POST", "/v1/events", J, E.encode() + b" x", 400, 'unexpected data after the JSON value'),
    ("trailing comma", "POST", "/v1/events", J, b"[" + E.encode() + b",]", 400, "unexpected ']', expected a value"),
    ("single quotes", "POST", "/v1/events", J, b"{'endpoint': '/a'}", 400, 'expected a member name in double quotes'),
    ("comment", "POST", "/v1/events", J, b"// hi\n" + E.encode(), 400, "unexpected '/', expected a value"),
    ("header injection in a label", "POST", "/v1/events", J, ev(endpoint="/a\r\nX-Injected: 1").encode(), 422, 'endpoint: must not contain control characters (found U+000D'),
    ("exposition injection in a label", "POST", "/v1/events", J, ev(model='x"} 1\nbackend_ttfb_seconds_count{a="b').encode(), 422, 'model: must not contain control characters (found U+000A'),
    ("label too long", "POST", "/v1/events", J, ev(endpoint="/" + "a" * 1000).encode(), 422, 'endpoint: must be at most 128 bytes long (got 1001)'),
    ("stage name with a dot", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"a.b": 1}}', 422, 'must match [a-z][a-z0-9_]*'),
    ("stage name with a newline", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"a\\nb": 1}}', 422, 'must match [a-z][a-z0-9_]*'),
    ("too many stages", "POST", "/v1/events", J, json.dumps({"endpoint": "/a", "stages": {f"s{i}": 1 for i in range(40)}}).encode(), 422, 'stages: has 40 stages, more than the limit of 32'),
    ("negative duration", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": -1}}', 422, 'stages.x: must not be negative (got -1)'),
    ("NaN", "POST", "/v1/events", J, b'{"endpoint": "/a", "stages": {"x": NaN}}', 422, 'stages.x: must be a finite number of seconds (got NaN)'),
    ("year 9999", "POST", "/v1/events", J, ev(timestamp="9999-12-31T23:59:59Z").encode(), 422, 'timestamp: is more than a week in the future'),
    ("February 30th", "POST", "/v1/events", J, ev(timestamp="2026-02-30T00:00:00Z").encode(), 422, 'is not an RFC 3339 time'),
    ("negative Unix seconds", "POST", "/v1/events", J, ev(timestamp=-1).encode(), 422, 'older than the retention'),
    ("top-level null", "POST", "/v1/events", J, b"null", 400, 'the body is null'),
    ("top-level number", "POST", "/v1/events", J, b"42", 400, 'the body is a number'),
    ("array of strings", "POST", "/v1/events", J, b'["a", "b"]', 422, 'must be a JSON object, got a string'),
    ("wrapper with extra member", "POST", "/v1/events", J, b'{"events": [], "x": 1}', 400, "must hold nothing else (found 'x')"),
    ("wrapper not an array", "POST", "/v1/events", J, b'{"events": {}}', 400, '"events" must be an array of event objects'),
    ("ndjson with a bad line", "POST", "/v1/events", ND, E.encode() + b"\n{\n", 400, 'line 2, column 2'),
    ("ndjson with two values on a line", "POST", "/v1/events", ND, E.encode() + b" " + E.encode() + b"\n", 400, 'invalid NDJSON at line 1, column 52: unexpected data after the event'),
    ("xml", "POST", "/v1/events", {"Content-Type": "application/xml"}, b"<event/>", 415, 'Content-Type application/xml is not accepted'),
    ("multipart", "POST", "/v1/events", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415, 'Content-Type multipart/form-data is not accepted'),
    ("deflate encoding", "POST", "/v1/events", {**J, "Content-Encoding": "deflate"}, E.encode(), 415, 'Content-Encoding deflate is not accepted'),
    ("gzip of garbage", "POST", "/v1/events", {**J, "Content-Encoding": "gzip"}, b"\x1f\x8b" + b"\x00" * 40, 400, 'Content-Encoding is gzip but the body is not valid gzip data'),
    ("gzip of invalid JSON", "POST", "/v1/events", {**J, "Content-Encoding": "gzip"}, gzip.compress(b"{nope"), 400, "found 'n'"),
    ("gzip bomb", "POST", "/v1/events", {**J, "Content-Encoding": "gzip"}, gzip.compress(b"[" * (70 * 1024 * 1024)), 413, 'inflates to more than 67108864 bytes'),
    ("path traversal in trends metric", "GET", "/v1/trends?metric=../../etc/passwd", {}, None, 400, "unknown metric '../../etc/passwd'"),
    ("bad percent-encoding", "GET", "/v1/trends?metric=%zz", {}, None, 400, 'malformed %-escape'),
    ("quantile out of range", "GET", "/v1/trends?metric=backend_ttfb_seconds&quantile=2", {}, None, 400, "quantile must be a number from 0 to 1 (got '2')"),
    ("window not a duration", "GET", "/v1/trends?metric=backend_ttfb_seconds&window=forever", {}, None, 400, 'window must be whole minutes'),
    ("unknown parameter", "GET", "/v1/trends?metric=backend_ttfb_seconds&drop=table", {}, None, 400, "unknown parameter 'drop'"),
    ("path traversal", "GET", "/../../etc/passwd", {}, None, 404, 'no route for GET /../../etc/passwd'),
    ("encoded path traversal", "GET", "/v1/%2e%2e/%2e%2e/etc/passwd", {}, None, 404, 'no route for GET /v1/%2e%2e'),
    ("GET on the ingest route", "GET", "/v1/events", {}, None, 405, '/v1/events does not take GET; it takes POST'),
    ("POST to metrics", "POST", "/metrics", J, E.encode(), 405, '/metrics does not take POST; it takes GET, HEAD'),
    ("long path", "GET", "/" + "a" * 8000, {}, None, 404, 'no route for GET /aaaa'),
    ("empty idempotency key", "POST", "/v1/events", {**J, "Idempotency-Key": ""}, E.encode(), 400, 'Idempotency-Key must be 1 to 255 characters'),
    ("idempotency key with a space", "POST", "/v1/events", {**J, "Idempotency-Key": "a b"}, E.encode(), 400, 'character 2 is not'),
    ("idempotency key of 10k characters", "POST", "/v1/events", {**J, "Idempotency-Key": "k" * 10000}, E.encode(), 400, 'got 10000'),
    ("delete every series", "DELETE", "/v1/series", {}, None, 400, 'name at least one of metric'),
    ("delete by SQL in a label name", "DELETE", "/v1/series?endpoint%3D1%20OR%201=1", {}, None, 400, 'is not a label'),
    ("status page window traversal", "GET", "/?window=../../etc/passwd", {}, None, 400, "window must be one of 5m, 1h, 24h"),
    ("status page with a script in a parameter", "GET", "/?<script>=1", {}, None, 400, "unknown parameter '<script>'"),
    ("delete with a traversal metric", "DELETE", "/v1/series?metric=../../etc", {}, None, 400, 'metric ../../etc is not one of'),
]



def error_text(response):
    answer = response.json()
    if "error" in answer:
        return answer["error"]
    return " | ".join(error["error"] for error in answer["errors"])


def seed_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#") and not line.startswith("perfgate_")]


def test_the_table_is_long_enough():
    assert len(CASES) >= 50
    assert len({case[0] for case in CASES}) == len(CASES)


def test_hostile_requests_get_their_documented_answers_and_change_nothing(perfgate):
    before = seed_lines(perfgate.metrics_text())
    failures = []
    for name, method, path, headers, body, status, words in CASES:
        response = perfgate.request(method, path, body, headers, timeout=30)
        if response.status != status or not response.headers["Content-Type"].startswith("application/json"):
            failures.append(f"{name}: {response.status} {response.body[:200]!r}")
        elif words not in error_text(response):
            failures.append(f"{name}: {error_text(response)[:300]!r} lacks {words!r}")
    assert not failures, "\n".join(failures)
    long_path = perfgate.get("/" + "b" * 8000)
    assert len(long_path.json()["error"]) < 400, "a hostile path is echoed only in part"
    assert perfgate.get("/healthz").status == 200
    text = perfgate.metrics_text()
    assert seed_lines(text) == before
    assert value(text, "perfgate_events_accepted_total") == 0


# Requests the HTTP parser itself refuses, sent as raw bytes: (case, bytes, status, words).
RAW_CASES = [
    ("headers over 80 KiB", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "headers are larger than 80 KiB"),
    ("negative Content-Length", b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "Content-Length is not a single non-negative number"),
    ("two Content-Lengths", b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "Content-Length"),
    ("space in a header name", b"GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "characters HTTP does not allow"),
    ("not HTTP at all", b"GARBAGE\r\n\r\n", 400, "not valid HTTP/1.1"),
    ("bad chunk size", b"POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunked body is malformed"),
]


def test_requests_http_cannot_parse_get_a_json_reason_and_change_nothing(perfgate):
    import socket
    before = seed_lines(perfgate.metrics_text())
    for name, raw, status, words in RAW_CASES:
        with socket.create_connection(("127.0.0.1", perfgate.port), timeout=5) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}".encode()), f"{name}: {answer[:200]!r}"
        assert words in json.loads(body)["error"], f"{name}: {body!r}"
    text = perfgate.metrics_text()
    assert seed_lines(text) == before
    assert f'perfgate_requests_rejected_total{{reason="malformed_http"}} {len(RAW_CASES)}' in text
