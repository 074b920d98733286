"""Bearer tokens against the real binary: roles, challenges, open health checks, the start-up log."""
import json

INGEST = "ingest-live-0123456789abcdef"
READ = "read-live-0123456789abcdef"
ADMIN = "admin-live-0123456789abcdef"
EVENT = {"endpoint": "/v1/chat/completions", "provider": "openrouter", "model": "gpt-4o", "stages": {"backend_fetch": 1.25}}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_tokens_from_a_file_and_the_environment_guard_each_route(make_perfgate, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# roles and tokens\ningest {INGEST}\nadmin {ADMIN}\n")
    server = make_perfgate(args=["--tokens-file", str(tokens)], env={"PERFGATE_READ_TOKENS": READ}).start()

    refused = server.post_events(EVENT)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="perfgate"'
    assert "needs a bearer token with the ingest role" in refused.json()["error"]

    wrong = server.get("/metrics", headers=bearer("x" * 32))
    assert wrong.status == 401
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="perfgate", error="invalid_token"'

    assert server.post_events(EVENT, headers=bearer(READ)).status == 403
    assert server.post_events(EVENT, headers=bearer(INGEST)).status == 200
    assert server.get("/metrics", headers=bearer(INGEST)).status == 403
    page = server.get("/metrics", headers=bearer(READ))
    assert page.status == 200
    assert 'backend_ttfb_seconds_count{provider="openrouter",model="gpt-4o",endpoint="/v1/chat/completions"} 1' in page.text
    assert server.get("/v1/trends?metric=backend_ttfb_seconds", headers=bearer(ADMIN)).status == 200
    assert server.get("/healthz").status == 200
    assert server.get("/readyz").status == 200

    # Deleting series is for admins; listing them is a read.
    selector = "/v1/series?endpoint=/v1/chat/completions"
    assert server.get(selector, headers=bearer(READ)).json()["matched"] == 2
    assert server.request("DELETE", selector, headers=bearer(READ)).status == 403
    assert server.request("DELETE", selector, headers=bearer(INGEST)).status == 403
    assert server.request("DELETE", selector).status == 401
    deleted = server.request("DELETE", selector, headers=bearer(ADMIN))
    assert deleted.status == 200 and deleted.json()["deleted"] == 2
    assert "backend_ttfb_seconds_count{" not in server.get("/metrics", headers=bearer(READ)).text

    log = server.log_path.read_text()
    assert "access tokens loaded" in log
    for token in (INGEST, READ, ADMIN):
        assert token not in log, "a token must never be logged"


def test_without_tokens_everything_is_open_and_the_log_says_so(perfgate):
    assert perfgate.post_events(EVENT).status == 200
    assert perfgate.get("/metrics").status == 200
    assert "every endpoint is open" in perfgate.log_path.read_text()


def test_a_bad_tokens_file_stops_start_up_naming_the_line(make_perfgate, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ingest {INGEST}\nreader {READ}\n")
    server = make_perfgate(args=["--tokens-file", str(tokens)])
    try:
        server.start(timeout=10)
        raise AssertionError("perfgate started with a bad tokens file")
    except RuntimeError as error:
        assert "line 2: expected '<role> <token>'" in str(error)
    assert READ not in server.log_path.read_text()
