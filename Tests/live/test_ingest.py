"""POST /v1/events over a real socket: every accepted layout, every documented refusal."""

import json
from decimal import Decimal

import pytest

from conftest import gzipped
from exposition import value

ONE = {"endpoint": "/v1/chat/completions", "provider": "openrouter", "model": "gpt-4o", "stages": {"backend_fetch": 1.697}}
TTFB = dict(provider="openrouter", model="gpt-4o", endpoint="/v1/chat/completions")


def ttfb_count(server):
    return value(server.metrics_text(), "backend_ttfb_seconds_count", **TTFB)


LAYOUTS = [
    ("one object", json.dumps(ONE), "application/json", None, 1),
    ("array", json.dumps([ONE, ONE]), "application/json", None, 2),
    ("wrapper", json.dumps({"events": [ONE, ONE, ONE]}), "application/json", None, 3),
    ("ndjson", "\n".join([json.dumps(ONE)] * 2) + "\n", "application/x-ndjson", None, 2),
    ("ndjson alias", json.dumps(ONE) + "\r\n\r\n" + json.dumps(ONE), "application/jsonl", None, 2),
    ("json with charset", json.dumps(ONE), "application/json; charset=utf-8", None, 1),
    ("gzip json", gzipped(json.dumps([ONE, ONE])), "application/json", "gzip", 2),
    ("gzip ndjson", gzipped(json.dumps(ONE) + "\n" + json.dumps(ONE)), "application/x-ndjson", "gzip", 2),
]


@pytest.mark.parametrize("name,body,content_type,encoding,count", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_every_layout_is_accepted_and_counted(perfgate, name, body, content_type, encoding, count):
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = perfgate.post_events(body, content_type, headers)
    assert response.status == 200, response.text
    assert response.json() == {"accepted": count, "rejected": 0, "errors": []}
    text = perfgate.metrics_text()
    assert value(text, "backend_ttfb_seconds_count", **TTFB) == count
    assert value(text, "backend_ttfb_seconds_sum", **TTFB) == Decimal("1.697") * count
    assert value(text, "perfgate_events_accepted_total") == count
    assert value(text, "perfgate_batches_total") == 1


# (case, body, content type, extra headers, status, words the error must contain)
REFUSED_BODIES = [
    ("empty", "", "application/json", {}, 400, "the body is empty"),
    ("truncated", '[{"endpoint": "/a", "stages": {"x": 1}', "application/json", {}, 400, "invalid JSON at line 1, column 39: unexpected end of input"),
    ("second line", '[{"endpoint": "/a",\n "stages": {"x": 1,}}]', "application/json", {}, 400, "line 2, column 20"),
    ("string", '"hi"', "application/json", {}, 400, "the body is a string"),
    ("two values", json.dumps(ONE) + json.dumps(ONE), "application/json", {}, 400, "use Content-Type: application/x-ndjson"),
    ("bad ndjson line", json.dumps(ONE) + "\nnope\n", "application/x-ndjson", {}, 400, "line 2, column 1"),
    ("invalid utf-8", b'{"endpoint": "\xff", "stages": {"x": 1}}', "application/json", {}, 400, "not valid UTF-8"),
    ("form", "a=1", "application/x-www-form-urlencoded", {}, 415, "Content-Type application/x-www-form-urlencoded is not accepted"),
    ("text", json.dumps(ONE), "text/plain", {}, 415, "send application/json"),
    # What a web page may send anywhere without asking first: never read as JSON.
    ("no content type", json.dumps(ONE), None, {}, 415, "a Content-Type is required"),
    ("multipart", json.dumps(ONE), "multipart/form-data; boundary=x", {}, 415, "Content-Type multipart/form-data is not accepted"),
    ("brotli", json.dumps(ONE), "application/json", {"Content-Encoding": "br"}, 415, "Content-Encoding br is not accepted"),
    ("not gzip", json.dumps(ONE), "application/json", {"Content-Encoding": "gzip"}, 400, "Content-Encoding is gzip but"),
    ("truncated gzip", gzipped(json.dumps(ONE))[:-12], "application/json", {"Content-Encoding": "gzip"}, 400, "ends early"),
    ("too large", " " * (8 * 1024 * 1024 + 1), "application/json", {}, 413, "larger than 8388608 bytes"),
    ("gzip bomb", gzipped(b" " * (65 * 1024 * 1024)), "application/json", {"Content-Encoding": "gzip"}, 413, "inflates to more than 67108864 bytes"),
]


@pytest.mark.parametrize("case,body,content_type,headers,status,words", REFUSED_BODIES, ids=[c[0] for c in REFUSED_BODIES])
def test_unreadable_bodies_are_refused_whole(perfgate, case, body, content_type, headers, status, words):
    before = ttfb_count(perfgate)
    response = perfgate.post_events(body, content_type, headers)
    assert response.status == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert words in response.json()["error"]
    assert ttfb_count(perfgate) == before
    # Each refusal is counted under its reason.
    reason = {400: "malformed_body", 413: "body_too_large", 415: "unsupported_media_type"}[status]
    assert value(perfgate.metrics_text(), "perfgate_requests_rejected_total", reason=reason) == 1


def test_a_batch_over_the_event_limit_is_refused_whole(make_perfgate):
    server = make_perfgate(["--max-events-per-batch", "3"]).start()
    response = server.post_events([ONE] * 4)
    assert response.status == 413
    assert "more than 3 events" in response.json()["error"]
    assert ttfb_count(server) is None
    assert value(server.metrics_text(), "perfgate_requests_rejected_total", reason="too_many_events") == 1


# (case, event, field, words) — each a per-event error naming the field.
INVALID_EVENTS = [
    ("missing endpoint", {"stages": {"backend_fetch": 1}}, "endpoint", "is required"),
    ("missing stages", {"endpoint": "/a"}, "stages", "is required"),
    ("empty stages", {"endpoint": "/a", "stages": {}}, "stages", "at least one stage"),
    ("negative", {"endpoint": "/a", "stages": {"backend_fetch": -0.5}}, "stages.backend_fetch", "must not be negative (got -0.5)"),
    ("absurd", {"endpoint": "/a", "stages": {"backend_fetch": 86401}}, "stages.backend_fetch", "at most 86400 seconds"),
    ("string duration", {"endpoint": "/a", "stages": {"backend_fetch": "1"}}, "stages.backend_fetch", "must be a number of seconds, got a string"),
    ("bad stage name", {"endpoint": "/a", "stages": {"Auth": 1}}, "stages.Auth", "must match [a-z][a-z0-9_]*"),
    ("long label", {"endpoint": "/" + "x" * 200, "stages": {"x": 1}}, "endpoint", "at most 128 bytes long (got 201)"),
    ("control character", {"endpoint": "/a", "model": "gpt\u0007", "stages": {"x": 1}}, "model", "control characters (found U+0007"),
    ("empty provider", {"endpoint": "/a", "provider": "", "stages": {"x": 1}}, "provider", "must not be empty"),
    ("wrong type", {"endpoint": ["/a"], "stages": {"x": 1}}, "endpoint", "must be a string, got an array"),
    ("unknown field", {"endpoint": "/a", "stages": {"x": 1}, "labels": {}}, "labels", "unknown field"),
    ("future", {"endpoint": "/a", "stages": {"x": 1}, "timestamp": "2999-01-01T00:00:00Z"}, "timestamp", "is more than a week in the future (at most 5m is allowed"),
    ("far future seconds", {"endpoint": "/a", "stages": {"x": 1}, "timestamp": 1e30}, "timestamp", "more than a week in the future"),
    ("past retention", {"endpoint": "/a", "stages": {"x": 1}, "timestamp": 1000}, "timestamp", "is more than a week old, older than the retention of 1d1h"),
    ("bad timestamp", {"endpoint": "/a", "stages": {"x": 1}, "timestamp": "now"}, "timestamp", "not an RFC 3339 time"),
    ("not an object", 42, "", "must be a JSON object, got a number"),
]


@pytest.mark.parametrize("case,event,field,words", INVALID_EVENTS, ids=[c[0] for c in INVALID_EVENTS])
def test_invalid_events_are_rejected_naming_the_field_and_the_rest_applied(perfgate, case, event, field, words):
    response = perfgate.post_events([ONE, event, ONE])
    assert response.status == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2 and answer["rejected"] == 1
    [error] = answer["errors"]
    assert error["index"] == 1
    assert error["field"] == field
    assert words in error["error"]
    assert error["error"].startswith(f"{field}: " if field else "")
    assert ttfb_count(perfgate) == 2


def test_nan_and_infinity_from_python_json_are_per_event_errors(perfgate):
    body = json.dumps([{"endpoint": "/a", "stages": {"backend_fetch": float("nan")}}, {"endpoint": "/a", "stages": {"backend_fetch": float("inf")}}])
    response = perfgate.post_events(body)
    assert response.status == 422
    messages = [e["error"] for e in response.json()["errors"]]
    assert messages == ["stages.backend_fetch: must be a finite number of seconds (got NaN)", "stages.backend_fetch: must be a finite number of seconds (got Infinity)"]
    assert value(perfgate.metrics_text(), "perfgate_events_rejected_total", reason="invalid_duration") == 2


def test_past_timestamps_are_accepted_within_the_retention(perfgate):
    import time

    an_hour_ago = time.time() - 3600
    response = perfgate.post_events([{**ONE, "timestamp": an_hour_ago}, {**ONE, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(an_hour_ago))}])
    assert response.json()["accepted"] == 2


def test_unknown_routes_and_methods_say_what_is_served(perfgate):
    response = perfgate.request("GET", "/v1/nothing")
    assert response.status == 404
    assert response.json()["error"].startswith("no route for GET /v1/nothing; perfgate serves GET /, POST /v1/events, POST /v1/traces, GET /metrics")
    # A known path with another method is 405 (every route and method: test_route_access.py).
    for method, path, allow in [("GET", "/v1/events", "POST, OPTIONS"), ("DELETE", "/metrics", "GET, HEAD, OPTIONS")]:
        response = perfgate.request(method, path)
        assert response.status == 405 and response.headers["Allow"] == allow
        assert response.json()["error"].startswith(f"{path} does not take {method}")
