"""perfgate serve as a user starts it: defaults, help, any working directory, settings sources."""

import json
import os
import sqlite3
import subprocess

from conftest import BINARY, Perfgate, free_port
from exposition import value

SETTINGS = ["host", "port", "db", "retention", "percentage-window", "durability", "max-body-size",
            "max-inflated-body-size", "max-events-per-batch", "max-label-length", "max-series-per-metric",
            "max-queued-events", "max-connections", "request-timeout", "series-ttl", "idempotency-ttl", "tls-certificate", "tls-key", "tokens-file", "ingest-tokens", "read-tokens", "admin-tokens", "log-level"]


def test_help_documents_every_option_and_its_environment_variable():
    help_text = subprocess.run([str(BINARY), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    flat = " ".join(help_text.split())
    for name in SETTINGS:
        assert f"--{name}" in flat
        assert "PERFGATE_" + name.upper().replace("-", "_") in flat
    for extra in ("--buckets", "PERFGATE_BUCKETS", "--config", "PERFGATE_CONFIG"):
        assert extra in flat


def test_version():
    result = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "0.1.0"


def test_no_arguments_creates_the_store_under_the_working_directory(tmp_path):
    server = Perfgate(tmp_path)
    server.start()
    try:
        server.post_events({"endpoint": "/a", "stages": {"backend_fetch": 1}})
        assert (tmp_path / "data" / "perfgate.sqlite").exists()
        assert "127.0.0.1" in server.base
    finally:
        server.stop()


def test_runs_from_any_directory_with_a_config_file_and_environment(tmp_path):
    config = tmp_path / "perfgate.json"
    config.write_text(json.dumps({"db": str(tmp_path / "elsewhere" / "store.sqlite"), "buckets": {"backend_ttfb_seconds": [0.25, 4]}}))
    workdir = tmp_path / "some" / "other" / "dir"
    workdir.mkdir(parents=True)
    server = Perfgate(workdir, env={"PERFGATE_CONFIG": str(config), "PERFGATE_PERCENTAGE_WINDOW": "10m"})
    server.start()
    try:
        server.post_events({"endpoint": "/a", "stages": {"backend_fetch": 1}})
        text = server.metrics_text()
        assert value(text, "backend_ttfb_seconds_bucket", provider="unknown", model="unknown", endpoint="/a", le="4.0") == 1
        assert "over the last 10m" in text
        assert (tmp_path / "elsewhere" / "store.sqlite").exists()
        assert not (workdir / "data").exists()
    finally:
        server.stop()


def run_expecting_failure(args, cwd, env=None):
    result = subprocess.run(
        [str(BINARY), "serve", "--port", str(free_port()), *args], cwd=cwd, capture_output=True, text=True, timeout=30,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_bad_settings_stop_start_up_with_a_clear_message(tmp_path):
    assert "--retention: must be whole minutes" in run_expecting_failure(["--retention", "soon"], tmp_path)
    assert "PERFGATE_MAX_LABEL_LENGTH: must be a whole number" in run_expecting_failure([], tmp_path, {"PERFGATE_MAX_LABEL_LENGTH": "x"})
    assert "unknown histogram" in run_expecting_failure(["--buckets", "ttfb=1,2"], tmp_path)


def test_a_store_that_is_not_a_database_stops_start_up(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "perfgate.sqlite").write_bytes(b"not a database" * 1000)
    assert "cannot be read as a perfgate database" in run_expecting_failure([], tmp_path)


def test_a_store_from_a_newer_perfgate_is_refused_not_downgraded(tmp_path):
    server = Perfgate(tmp_path).start()
    assert server.post_events({"endpoint": "/a", "stages": {"backend_fetch": 1}}).status == 200
    server.stop()
    database = tmp_path / "data" / "perfgate.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')")
    output = run_expecting_failure([], tmp_path)
    assert "newer" in output and "999" in output
    # Nothing was changed by the refused start: the future migration is still recorded.
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 999


def test_a_truncated_store_stops_start_up(tmp_path):
    server = Perfgate(tmp_path).start()
    assert server.post_events({"endpoint": "/a", "stages": {"backend_fetch": 1}}).status == 200
    server.stop()
    database = tmp_path / "data" / "perfgate.sqlite"
    database.write_bytes(database.read_bytes()[:1500])
    for suffix in ("-wal", "-shm"):
        (tmp_path / "data" / f"perfgate.sqlite{suffix}").unlink(missing_ok=True)
    output = run_expecting_failure([], tmp_path)
    assert "cannot be read as a perfgate database" in output
    assert len(database.read_bytes()) == 1500, "a refused store is left as it was"


def test_a_foreign_sqlite_file_is_refused_not_taken_over(tmp_path):
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "perfgate.sqlite") as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    output = run_expecting_failure([], tmp_path)
    assert "the file holds no perfgate tables" in output


def test_after_sigterm_the_database_file_alone_holds_the_store(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    server = Perfgate(first).start()
    assert server.post_events([{"endpoint": "/a", "stages": {"backend_fetch": 1}}] * 3).status == 200
    assert server.stop() == 0
    # Copy the main file only, as a careless backup would: the checkpoint at shutdown made it complete.
    second = tmp_path / "second"
    (second / "data").mkdir(parents=True)
    (second / "data" / "perfgate.sqlite").write_bytes((first / "data" / "perfgate.sqlite").read_bytes())
    copy = Perfgate(second).start()
    try:
        assert value(copy.metrics_text(), "backend_ttfb_seconds_count", provider="unknown", model="unknown", endpoint="/a") == 3
    finally:
        copy.stop()


def test_changed_buckets_are_refused_rather_than_mixed(tmp_path):
    server = Perfgate(tmp_path).start()
    server.stop()
    output = run_expecting_failure(["--buckets", "backend_ttfb_seconds=1,2"], tmp_path)
    assert "the buckets of backend_ttfb_seconds changed" in output
