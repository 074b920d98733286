"""DNS rebinding: with no tokens, a page whose own name was made to resolve to perfgate's address is
same-origin with it in the browser. Browsers may reach an open perfgate only by IP address,
localhost or a name in --allowed-hosts; other clients by any name."""
import json

EVENT = json.dumps({"endpoint": "/rebind", "stages": {"backend_fetch": 0.2}})


def browser(server, name, same_origin=True):
    headers = {"Host": f"{name}:{server.port}", "Origin": f"http://{name}:{server.port}"}
    if same_origin:
        headers["Sec-Fetch-Site"] = "same-origin"
    return headers


def test_a_rebound_name_reads_and_writes_nothing(make_perfgate):
    server = make_perfgate().start()
    for method, path, body, extra in [
        ("POST", "/v1/events", EVENT, {"Content-Type": "application/json"}),
        ("DELETE", "/v1/series?endpoint=/rebind", None, {}),
        ("GET", "/metrics", None, {}),
        ("GET", "/", None, {}),
    ]:
        answer = server.request(method, path, body, {**browser(server, "evil.example"), **extra})
        assert answer.status == 403, (method, path, answer.status, answer.body[:200])
        assert "--allowed-hosts" in answer.json()["error"]
    # The same requests by IP address or localhost, and from clients that are not browsers, go on.
    for name in ("127.0.0.1", "localhost"):
        assert server.request("POST", "/v1/events", EVENT, {**browser(server, name), "Content-Type": "application/json"}).status == 200
    assert server.request("GET", "/metrics", None, {"Host": "perfgate.internal"}).status == 200
    assert server.get("/healthz", {"Host": "evil.example", "Sec-Fetch-Site": "same-origin"}).status == 200


def test_named_hosts_and_tokens(make_perfgate, tmp_path):
    named = make_perfgate(["--allowed-hosts", "perfgate.internal"]).start()
    assert named.request("GET", "/metrics", None, browser(named, "perfgate.internal")).status == 200
    assert named.request("GET", "/metrics", None, browser(named, "evil.example")).status == 403
    tokens = tmp_path / "tokens"
    tokens.write_text("read read-token-0123456789abcdef\n")
    guarded = make_perfgate(["--tokens-file", str(tokens)]).start()
    # With tokens, a rebound page holds none: the name decides nothing.
    headers = {**browser(guarded, "perfgate.internal"), "Authorization": "Bearer read-token-0123456789abcdef"}
    assert guarded.request("GET", "/metrics", None, headers).status == 200
    assert guarded.request("GET", "/metrics", None, browser(guarded, "evil.example")).status == 401
