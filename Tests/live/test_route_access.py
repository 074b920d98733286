"""Access from the outside, generated from the route table (`perfgate routes --json`): every
guarded route, in every spelling attackers, proxies and clients send, without a token and with a
token of the wrong role, never reaches its handler. New routes are covered without editing this file.
Also: wrong methods get 405 with Allow (RFC 9110), unknown paths 404 naming the real routes."""

import http.client
import json
import subprocess

import pytest

from conftest import BINARY
from exposition import value

INGEST, READ, ADMIN = "ingest-edges-0123456789abcdef", "read-edges-0123456789abcdef", "admin-edges-0123456789abcdef"
TOKENS = {"ingest": INGEST, "read": READ, "admin": ADMIN}
EVENT = json.dumps({"endpoint": "/edge", "provider": "p", "model": "m", "stages": {"backend_fetch": 1.5}})
ROUTES = json.loads(subprocess.run([str(BINARY), "routes", "--json"], capture_output=True, text=True, check=True).stdout)
GUARDED = [route for route in ROUTES if route["access"] != "open"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
# A query that lets each route's handler succeed, so a request that got past the access check
# would show as a 200 rather than hide behind a 400 for a missing parameter. A route that needs
# one and is missing here fails test_spellings_the_router_takes_are_served_with_the_right_token.
QUERIES = {"/v1/trends": "?metric=backend_ttfb_seconds", "/v1/series": "?endpoint=/edge"}


def attempt(server, route, target, token):
    """Sends `route`'s request to `target` (a spelling of its path) with `token`, or none."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if route["method"] == "POST":
        body = EVENT.encode()
        headers["Content-Type"] = "application/json"
    query = QUERIES.get(route["path"], "")
    if query and "?" not in target and "#" not in target:
        target += query
    return send(server, route["method"], target, headers, body)


def spellings(path, port):
    """The ways a request line can name `path`: what routers, proxies and URL libraries disagree on."""
    segments = [s for s in path.split("/") if s]
    out = {
        path + "/", "/" + path, path + "//", "//" + path.lstrip("/") + "/", path.replace("/", "//"),
        path + "/.", "/." + path, path + "/./", path + "/x/..", path + "/%2e", path + "/%2E%2E" + path,
        path.upper(), path.title(), path + ";x=1", path + "%3B", path + "?", path + "#fragment",
        path + "%2F", path.replace("/", "%2F"), path + "%00", path + "%20", path + "\\", path.replace("/", "\\"),
        f"http://127.0.0.1:{port}{path}", f"http://evil.example{path}", f"HTTP://127.0.0.1:{port}//{path.lstrip('/')}",
    }
    for index in range(len(segments)):
        out.add("/" + "/".join(segments[:index]) + ("/" if index else "") + "/" + "/".join(segments[index:]))
    if segments:
        first = segments[0]
        out |= {
            "/" + "/".join(segments[:-1] + [segments[-1] + "/"]),
            path.replace(first, first + ";a=b", 1),
            path.replace(first, "%" + format(ord(first[0]), "02x") + first[1:], 1),
            path.replace(first, "%" + format(ord(first[0]), "02X") + first[1:], 1),
            path.replace("/" + first, "/./" + first, 1),
            path.replace("/" + first, "/" + first + "/../" + first, 1),
            path.replace("/" + first, "/%2e/" + first, 1),
        }
    else:
        out |= {"//", "///", "/.", "/./", "/%2e", "/%2f", "/?x", "/index.html", "/;x"}
    return sorted(out)


def send(server, method, target, headers, body=None):
    """A request line exactly as given (http.client adds nothing to the target)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value_ in headers.items():
            connection.putheader(name, value_)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def guarded(make_perfgate):
    server = make_perfgate(env={"PERFGATE_INGEST_TOKENS": INGEST, "PERFGATE_READ_TOKENS": READ, "PERFGATE_ADMIN_TOKENS": ADMIN}).start()
    # One series to delete, so a DELETE that got through would show.
    assert server.post_events(EVENT, headers={"Authorization": f"Bearer {INGEST}"}).status == 200
    return server


def metrics(server):
    return server.get("/metrics", headers={"Authorization": f"Bearer {READ}"}).text


def test_the_route_table_declares_a_role_for_every_route():
    assert ROUTES and all(route["access"] in {"open", "ingest", "read", "admin"} for route in ROUTES)
    assert {route["path"] for route in ROUTES if route["access"] == "open"} == {"/healthz", "/readyz"}


def test_no_spelling_of_a_guarded_route_passes_without_its_role(guarded):
    before = metrics(guarded)
    tried = 0
    for route in GUARDED:
        wrong = [None] + [token for role, token in TOKENS.items() if role not in (route["access"], "admin")]
        for target in spellings(route["path"], guarded.port):
            for token in wrong:
                status, answer = attempt(guarded, route, target, token)
                tried += 1
                # Refused by the access check, or not routed at all (404, or 400 from the HTTP
                # parser): never an answer of the handler.
                assert status in (400, 401, 403, 404), f"{route['method']} {target!r} with {'a wrong-role token' if token else 'no token'}: {status} {answer[:200]!r}"
                if status in (400, 404):
                    routed, _ = attempt(guarded, route, target, ADMIN)
                    assert routed == status, f"{route['method']} {target!r}: {status} without the role, {routed} with it"
    assert tried > 200
    after = metrics(guarded)
    # Nothing was counted and nothing was deleted.
    assert value(after, "perfgate_events_accepted_total") == value(before, "perfgate_events_accepted_total") == 1
    assert value(after, "backend_ttfb_seconds_count", provider="p", model="m", endpoint="/edge") == 1


def test_spellings_the_router_takes_are_served_with_the_right_token(guarded):
    """The same spellings with the route's own role: those the router resolves are served as the
    route is, so the test above does not pass only because every spelling is a 404."""
    # DELETE last: it removes the series the others read.
    for route in sorted(GUARDED, key=lambda route: route["method"] == "DELETE"):
        token = TOKENS[route["access"]]
        plain, answer = attempt(guarded, route, route["path"], token)
        assert plain == 200, f"{route['method']} {route['path']}: {plain} {answer[:200]!r} (add a query to QUERIES?)"
        if route["method"] == "DELETE":
            continue  # a second delete finds nothing left, and says so with 200 as well
        answers = {target: attempt(guarded, route, target, token)[0] for target in spellings(route["path"], guarded.port)}
        assert set(answers.values()) <= {200, 400, 404}, (route, answers)
        for target in (route["path"] + "/", "/" + route["path"], f"http://127.0.0.1:{guarded.port}{route['path']}"):
            assert answers[target] == 200, (route, target, answers[target])


def test_a_wrong_method_on_a_known_path_is_405_with_allow(guarded):
    by_path = {}
    for route in ROUTES:
        by_path.setdefault(route["path"], set()).add(route["method"])
    for path, allowed in by_path.items():
        expected_allow = set(allowed) | ({"HEAD"} if "GET" in allowed else set()) | {"OPTIONS"}
        for method in METHODS:
            if method in expected_allow:
                continue
            for target in (path, path + "/"):
                status, answer = send(guarded, method, target, {})
                assert status == 405, f"{method} {target}: {status} {answer[:200]!r}"
                connection = http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=10)
                connection.request(method, target)
                response = connection.getresponse()
                assert {m.strip() for m in response.getheader("Allow").split(",")} == expected_allow, (method, target)
                answer = response.read()
                if method != "HEAD":  # a HEAD answer has no body
                    assert path in json.loads(answer)["error"]
                connection.close()
        status, _ = send(guarded, "OPTIONS", path, {})
        assert status == 204


def test_head_is_answered_wherever_get_is_and_checks_the_same_role(guarded):
    for route in ROUTES:
        if route["method"] != "GET":
            continue
        status, body = send(guarded, "HEAD", route["path"], {})
        assert status == (200 if route["access"] == "open" else 401) and body == b"", route
        status, body = send(guarded, "HEAD", route["path"], {"Authorization": f"Bearer {ADMIN}"})
        assert status in (200, 400) and body == b"", route


def test_an_unknown_path_is_404_naming_every_route_and_an_unknown_method_501(guarded):
    status, answer = send(guarded, "GET", "/v2/events", {})
    assert status == 404
    message = json.loads(answer)["error"]
    for route in ROUTES:
        assert f"{route['method']} {route['path']}" in message
    status, answer = send(guarded, "PROPFIND", "/metrics", {})
    assert status == 501 and "PROPFIND" in json.loads(answer)["error"]
