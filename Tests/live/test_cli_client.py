"""`perfgate send` and `perfgate trends` against a live perfgate."""

import json
import subprocess
import time

from conftest import BINARY
from exposition import value


def run_cli(*args, env=None):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=60, env=env)


def send(server, *args):
    return run_cli("send", "--url", server.base, *args)


def test_send_posts_one_event_and_says_what_went_wrong(perfgate):
    server = perfgate
    sent = send(server, "--endpoint", "/v1/chat/completions", "--provider", "openrouter", "--model", "gpt-4o",
                "--stage", "backend_fetch=1.7", "--stage", "stream_processing=1.3", "--stage", "request_parsing=0.002")
    assert sent.returncode == 0, sent.stderr
    assert f"sent: 1 event to {server.base}" in sent.stdout
    text = server.metrics_text()
    labels = {"provider": "openrouter", "model": "gpt-4o", "endpoint": "/v1/chat/completions"}
    assert str(value(text, "backend_ttfb_seconds_sum", **labels)) == "1.7"
    assert str(value(text, "streaming_duration_seconds_sum", **labels)) == "1.3"

    refused = send(server, "--endpoint", "/x", "--stage", "Bad.Name=1")
    assert refused.returncode == 1 and "stage name 'Bad.Name' must match" in refused.stderr
    malformed = send(server, "--endpoint", "/x", "--stage", "backend_fetch")
    assert malformed.returncode != 0 and "expected name=seconds" in malformed.stderr
    unreachable = run_cli("send", "--url", "http://127.0.0.1:9", "--endpoint", "/x", "--stage", "a=1")
    assert unreachable.returncode == 1 and "perfgate is unreachable" in unreachable.stderr


def test_trends_prints_a_table_marking_what_degraded(perfgate):
    server = perfgate
    hour_ago = time.time() - 3600
    for provider, before, now in [("steady", 0.4, 0.4), ("slipping", 0.4, 2.7)]:
        for n in range(10):
            for stamp, seconds in [(hour_ago - 60, before), (time.time(), now)]:
                result = send(server, "--endpoint", "/e", "--provider", provider, "--model", "m",
                              "--stage", f"backend_fetch={seconds}", "--timestamp", str(stamp))
                assert result.returncode == 0, result.stderr
    table = run_cli("trends", "--url", server.base, "--metric", "backend_ttfb_seconds", "--by", "provider", "--window", "5m")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "backend_ttfb_seconds p95 over the last 5m, against 1h earlier"
    assert lines[1].split() == ["provider", "now", "1h", "ago", "change", "status"]
    rows = {line.split()[0]: line for line in lines[2:]}
    def seconds(text):
        return float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1])
    # Every slipping event took 2.7 s now and 0.4 s then: within the exponential buckets' 1.1%.
    _, now_text, then_text, *_ = rows["slipping"].split()
    assert rows["slipping"].endswith("DEGRADING")
    assert abs(seconds(now_text) / 2.7 - 1) < 0.011 and abs(seconds(then_text) / 0.4 - 1) < 0.011, rows["slipping"]
    assert rows["steady"].endswith("ok") and "+0%" in rows["steady"]

    answer = json.loads(run_cli("trends", "--url", server.base, "--metric", "backend_ttfb_seconds", "--by", "provider", "--json").stdout)
    assert {group["labels"]["provider"]: group["degrading"] for group in answer["groups"]} == {"slipping": True, "steady": False}
    only = run_cli("trends", "--url", server.base, "--metric", "backend_ttfb_seconds", "--by", "provider", "--label", "provider=steady")
    assert "slipping" not in only.stdout and "steady" in only.stdout
    wrong = run_cli("trends", "--url", server.base, "--metric", "nope")
    assert wrong.returncode == 1 and "unknown metric 'nope'" in wrong.stderr
