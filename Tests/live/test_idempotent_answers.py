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
