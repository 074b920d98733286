"""perfgate serve as a user starts it: defaults, help, any working directory, settings sources."""

import json
import os
import subprocess

from conftest import BINARY, Perfgate, free_port
from exposition import value

SETTINGS = ["host", "port", "db", "retention", "percentage-window", "durability", "max-body-size",
            "max-inflated-body-size", "max-events-per-batch", "max-label-length", "max-series-per-metric",
            "max-queued-events", "log-level"]


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
        assert value(text, "backend_ttfb_seconds_bucket", provider="unknown", model="unknown", endpoint="/a", le="4") == 1
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


def test_changed_buckets_are_refused_rather_than_mixed(tmp_path):
    server = Perfgate(tmp_path).start()
    server.stop()
    output = run_expecting_failure(["--buckets", "backend_ttfb_seconds=1,2"], tmp_path)
    assert "the buckets of backend_ttfb_seconds changed" in output
