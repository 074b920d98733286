"""Answers kept for retries of an Idempotency-Key stay small whatever the body held: an error
quotes a short excerpt of what it refuses, and an answer kept for replay holds at most 16 KiB,
saying when it lists fewer errors than the first answer did.

Before, five gzipped uploads of about 20 KB (each one event and a 20 MiB number) stored 105 MB of
answers, each kept for a day under a fresh key."""
import gzip
import json
import random
import sqlite3

from conftest import Perfgate

MIB = 1024 * 1024


def answer_bytes(database):
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM idempotent_answer").fetchone()


def test_oversized_errors_under_fresh_keys_keep_the_answer_table_small(tmp_path):
    server = Perfgate(tmp_path).start()
    huge = "9" * (20 * MIB)
    for index in range(5):
        body = '[{"endpoint": "/a", "stages": {"backend_fetch": 0.25}}, {"endpoint": "/a", "stages": {"backend_fetch": %s}}]' % huge
        compressed = gzip.compress(body.encode())
        assert len(compressed) < 64 * 1024
        response = server.request("POST", "/v1/events", compressed, {
            "Content-Type": "application/json", "Content-Encoding": "gzip", "Idempotency-Key": f"fresh-{index}",
        }, timeout=60)
        assert response.status == 200, response.body[:300]
        error = response.json()["errors"][0]["error"]
        assert len(error) < 200 and "(20971520 characters)" in error, error
    # Many errors: the first answer lists up to 1,000; the one kept for a retry fits 16 KiB and says so.
    rng = random.Random(7)
    events = [{"endpoint": "/a", "stages": {"backend_fetch": -rng.uniform(0.001, 9)}} for _ in range(3000)] + [{"endpoint": "/a", "stages": {"backend_fetch": 0.5}}]
    headers = {"Content-Type": "application/json", "Idempotency-Key": "many-errors"}
    first = server.request("POST", "/v1/events", json.dumps(events).encode(), headers)
    assert first.status == 200 and len(first.json()["errors"]) == 1000
    again = server.request("POST", "/v1/events", json.dumps(events).encode(), headers)
    kept = again.json()
    assert again.status == 200 and len(again.body) <= 16 * 1024
    assert kept["accepted"] == 1 and kept["rejected"] == 3000
    assert len(kept["errors"]) + kept["errors_omitted"] == 3000
    assert "lists the first" in kept["errors_cut"]
    server.stop()
    rows, stored = answer_bytes(tmp_path / "data" / "perfgate.sqlite")
    assert rows == 6 and stored < 6 * 16 * 1024, (rows, stored)


def metric_value(server, name):
    for line in server.request("GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not on /metrics")


def test_the_answer_table_keeps_within_its_rows_and_bytes_oldest_first(tmp_path):
    """A flood of fresh keys lets the oldest answers go, counted; the newest still replay."""
    server = Perfgate(tmp_path, ["--max-kept-answers", "40", "--max-kept-answer-bytes", "64KiB"]).start()
    database = tmp_path / "data" / "perfgate.sqlite"
    rng = random.Random(11)
    sent = 0
    for index in range(150):
        # Answers of random size: a few bytes (accepted) to a few KiB (many errors quoted).
        bad = rng.randrange(0, 40)
        events = [{"endpoint": "/a", "stages": {"backend_fetch": rng.uniform(0.01, 3)}}] + [{"endpoint": "/a", "stages": {"backend_fetch": "x" * 50}}] * bad
        response = server.request("POST", "/v1/events", json.dumps(events).encode(), {"Content-Type": "application/json", "Idempotency-Key": f"flood-{index}"})
        assert response.status == 200
        sent += 1
        rows, stored = answer_bytes(database)
        assert rows <= 40 and stored <= 64 * 1024, (index, rows, stored)
    rows, stored = answer_bytes(database)
    assert metric_value(server, "perfgate_idempotent_answers_evicted_total") == sent - rows
    # The newest answer is still kept (its key with another body is refused); the oldest was let
    # go, so its key is free again.
    other = json.dumps([{"endpoint": "/a", "stages": {"backend_fetch": 1.25}}]).encode()
    newest = server.request("POST", "/v1/events", other, {"Content-Type": "application/json", "Idempotency-Key": "flood-149"})
    assert newest.status == 422 and "different body" in newest.text, newest.body[:200]
    oldest = server.request("POST", "/v1/events", other, {"Content-Type": "application/json", "Idempotency-Key": "flood-0"})
    assert oldest.status == 200 and oldest.json()["accepted"] == 1, oldest.body[:200]
    server.stop()
