"""Faults of the store's file system: a disk that fills up, a store that cannot be written.

Both need a file system the test makes and owns (a size-limited tmpfs, a read-only bind
mount), so they need root. CI runs as root and must run them; elsewhere they are skipped.
"""

import contextlib
import os
import subprocess
import time

import pytest

from conftest import BINARY, Perfgate
from exposition import series

if os.geteuid() != 0:
    if os.environ.get("CI") == "true":
        raise RuntimeError("the file-system fault tests need root in CI (to mount a tmpfs)")
    pytest.skip("mounting a test file system needs root", allow_module_level=True)


@contextlib.contextmanager
def mounted(*mount_args, target):
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *mount_args, str(target)], check=True, timeout=10)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True, timeout=10)


def fill(folder):
    """Writes a file until the file system refuses more; returns it (deleting it frees the space)."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(chunk)
    return filler


def batch(name, size=20):
    # A batch of new series, so that every commit must grow the store.
    return [{"endpoint": f"/{name}/{n}", "provider": "disk", "model": name, "stages": {"backend_fetch": 0.2}} for n in range(size)]


def counted_models(server):
    models = {}
    for labels, count in series(server.metrics_text(), "backend_ttfb_seconds_count").items():
        labels = dict(labels)
        if labels["provider"] == "disk":
            models[labels["model"]] = models.get(labels["model"], 0) + int(count)
    return models


def test_a_full_disk_refuses_batches_whole_and_recovers_when_space_returns(tmp_path):
    with mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", target=tmp_path / "small") as small:
        server = Perfgate(tmp_path, ["--db", str(small / "perfgate.sqlite")]).start()
        try:
            acknowledged = {}
            assert server.post_events(batch("before")).status == 200
            acknowledged["before"] = 20
            filler = fill(small)

            refusal = None
            for attempt in range(200):
                response = server.post_events(batch(f"full-{attempt}"))
                if response.status == 200:
                    acknowledged[f"full-{attempt}"] = 20  # what free pages were left still took it
                    continue
                refusal = response
                break
            assert refusal is not None, "the store never filled up"
            assert refusal.status == 503
            assert refusal.headers["Retry-After"]
            message = refusal.json()["error"]
            assert "disk holding" in message and "is full" in message and "nothing was applied" in message

            # The process stays up, says it is not ready, and nothing of the refused batch shows.
            assert server.get("/healthz").status == 200
            ready = server.get("/readyz")
            # The open route says why in words that name no path; the details are in the log.
            assert ready.status == 503 and ready.json()["reason"] == "the store failed in the last 10 seconds", ready.text
            assert str(server.workdir) not in ready.text
            assert "is full" in server.log_path.read_text()
            assert counted_models(server) == acknowledged
            assert 'perfgate_requests_rejected_total{reason="store_error"} 1' in server.metrics_text()

            filler.unlink()
            assert server.post_events(batch("after")).status == 200
            acknowledged["after"] = 20
            assert counted_models(server) == acknowledged
            assert server.stop() == 0

            # What was acknowledged, and only that, is what the store holds after a restart.
            server = Perfgate(tmp_path, ["--db", str(small / "perfgate.sqlite")]).start()
            assert counted_models(server) == acknowledged
        finally:
            server.stop()


def test_a_read_only_store_stops_start_up_instead_of_serving_stale_counts(tmp_path):
    writable = tmp_path / "writable"
    writable.mkdir()
    server = Perfgate(tmp_path, ["--db", str(writable / "perfgate.sqlite")]).start()
    assert server.post_events(batch("kept", 1)).status == 200
    assert server.stop() == 0

    with mounted("--bind", str(writable), target=tmp_path / "read-only") as read_only:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(read_only)], check=True, timeout=10)
        result = subprocess.run(
            [str(BINARY), "serve", "--db", str(read_only / "perfgate.sqlite"), "--port", "0"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode != 0
    assert "cannot be written" in result.stderr + result.stdout
    assert "read-only" in result.stderr + result.stdout
