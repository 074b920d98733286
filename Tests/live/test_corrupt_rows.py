"""Damaged rows in the SQLite store, written by hand into a real store file: perfgate starts, serves
everything else with the counts an independent computation gives for it, skips and counts each
damaged row (/metrics, /readyz, the status page, the log), and keeps taking writes, including
writes to the series-minutes whose stored rows are damaged.

The first case is the row that crash-looped a server: exponential buckets with indices Int32.min
and Int32.max, which made the next /v1/trends trap on arithmetic overflow, and every restart die
while restoring."""
import random
import sqlite3
import struct
import subprocess

from conftest import BINARY, Perfgate
from exposition import value
from test_otlp import ld

SPREAD = bytes.fromhex("060002ffffffff0f01feffffff1f01")
PROVIDERS = ["openrouter", "portkey", "together", "groq"]


def events(rng, count):
    return [{
        "endpoint": "/v1/chat/completions", "provider": rng.choice(PROVIDERS), "model": "m",
        "stages": {"backend_fetch": round(rng.lognormvariate(-0.7, 0.5), 6)},
    } for _ in range(count)]


def ttfb_count(text, provider):
    return value(text, "backend_ttfb_seconds_count", provider=provider, model="m", endpoint="/v1/chat/completions")


def series_id(connection, provider):
    return connection.execute(
        "SELECT id FROM series WHERE metric = 'backend_ttfb_seconds' AND label_values = ?",
        ("\x1f".join([provider, "m", "/v1/chat/completions"]),),
    ).fetchone()[0]


def damaged_store(tmp_path, rng, count):
    """A stopped server whose store holds `count` events and a waiting span, then damaged by hand:
    exponential buckets out of range, short bucket counts, a series of an unknown family and a
    span that does not decode. Returns the server, the events, the store and the damaged ids."""
    sent = events(rng, count)
    server = Perfgate(tmp_path).start()
    assert server.post_events(sent).status == 200
    # One span waiting for its root: a row of pending_span to damage too.
    span = ld(1, bytes(range(1, 17))) + ld(2, struct.pack(">Q", 2)) + ld(4, struct.pack(">Q", 1)) + ld(5, b"backend_fetch")
    assert server.request("POST", "/v1/traces", ld(1, ld(2, ld(2, span))), {"Content-Type": "application/x-protobuf"}).status == 200
    server.stop()
    database = tmp_path / "data" / "perfgate.sqlite"
    with sqlite3.connect(database) as connection:
        spread, short, renamed = (series_id(connection, p) for p in PROVIDERS[:3])
        connection.execute("UPDATE rollup SET exponential = ? WHERE series_id = ?", (SPREAD, spread))
        connection.execute("UPDATE rollup SET buckets = x'0102' WHERE series_id = ?", (short,))
        connection.execute("UPDATE series SET metric = 'no_such_family' WHERE id = ?", (renamed,))
        connection.execute("UPDATE pending_span SET span = x'ff'")
    return server, sent, database, (spread, short, renamed)


def test_damaged_rows_are_skipped_counted_and_shown_and_everything_else_is_served(tmp_path):
    rng = random.Random(20261207)
    server, sent, database, (spread, short, renamed) = damaged_store(tmp_path, rng, 400)

    # perfgate check reads every row back and names the damaged ones.
    check = subprocess.run([str(BINARY), "check", "--db", str(database)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "damaged rows" in check.stdout and f"rollup of series {spread} at minute" in check.stdout and "pending_span" in check.stdout, check.stdout

    server.start()
    text = server.metrics_text()
    # The one series left whole has exactly what was sent to it; the damaged ones lost their minute.
    intact = PROVIDERS[3]
    assert ttfb_count(text, intact) == sum(1 for e in sent if e["provider"] == intact)
    for provider in PROVIDERS[:3]:
        assert not ttfb_count(text, provider)
    damaged = value(text, "perfgate_store_corrupt_rows_total")
    assert damaged >= 4, damaged  # the two rollups, the series (and its rollup), the waiting span
    assert server.get("/v1/trends?metric=backend_ttfb_seconds&by=provider,model").status == 200
    assert server.get("/").status == 200 and "damaged store rows" in server.get("/").text
    ready = server.get("/readyz").json()
    assert ready["ready"] is True and ready["corrupt_rows"] == damaged
    log = (tmp_path / "perfgate.log").read_text()
    assert "a row of the store is damaged and was skipped" in log and "rollup of series" in log

    # Writes to the damaged series-minutes replace what is damaged, and count.
    again = events(rng, 200)
    assert server.post_events(again).status == 200
    text = server.metrics_text()
    for provider in PROVIDERS[:2]:
        assert ttfb_count(text, provider) == sum(1 for e in again if e["provider"] == provider)
    assert ttfb_count(text, intact) == sum(1 for e in sent + again if e["provider"] == intact)
    # And the store starts again, from what it now holds.
    server.stop()
    missing = subprocess.run([str(BINARY), "check", "--db", str(tmp_path / "none.sqlite")], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no store at" in missing.stderr and not (tmp_path / "none.sqlite").exists()
    fresh = Perfgate(tmp_path / "fresh")
    (tmp_path / "fresh").mkdir()
    fresh.start()
    assert fresh.post_events(events(rng, 20)).status == 200
    fresh.stop()
    clean = subprocess.run([str(BINARY), "check", "--db", str(tmp_path / "fresh" / "data" / "perfgate.sqlite")], capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0 and "0 damaged rows" in clean.stdout, clean.stdout + clean.stderr
    server.start()
    assert ttfb_count(server.metrics_text(), intact) == sum(1 for e in sent + again if e["provider"] == intact)
    server.stop()


def test_check_quarantines_the_damaged_rows_and_the_server_then_finds_none(tmp_path):
    rng = random.Random(20261208)
    server, sent, database, (spread, short, renamed) = damaged_store(tmp_path, rng, 300)
    with sqlite3.connect(database) as connection:
        damaged_rollups = connection.execute("SELECT count(*) FROM rollup WHERE series_id IN (?, ?, ?)", (spread, short, renamed)).fetchone()[0]

    check = subprocess.run([str(BINARY), "check", "--quarantine", "--db", str(database)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{damaged_rollups + 2} rows moved to the quarantined_* tables" in check.stdout, check.stdout
    with sqlite3.connect(database) as connection:
        quarantined = {row[0]: row[1] for row in connection.execute("SELECT series_id, reason FROM quarantined_rollup")}
        assert set(quarantined) == {spread, short, renamed}
        assert "damaged exponential buckets" in quarantined[spread] and "2 bytes of bucket counts" in quarantined[short]
        assert "no such series" in quarantined[renamed]
        assert connection.execute("SELECT id, metric FROM quarantined_series").fetchall() == [(renamed, "no_such_family")]
        assert connection.execute("SELECT count(*) FROM quarantined_pending_span").fetchone()[0] == 1
        assert connection.execute("SELECT count(*) FROM rollup WHERE series_id IN (?, ?, ?)", (spread, short, renamed)).fetchone()[0] == 0
    again = subprocess.run([str(BINARY), "check", "--db", str(database)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "0 damaged rows" in again.stdout, again.stdout + again.stderr

    server.start()
    text = server.metrics_text()
    assert value(text, "perfgate_store_corrupt_rows_total") == 0
    intact = PROVIDERS[3]
    assert ttfb_count(text, intact) == sum(1 for e in sent if e["provider"] == intact)
    assert server.get("/readyz").json()["ready"] is True
    server.stop()
