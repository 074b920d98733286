"""Acknowledged events survive SIGKILL at any moment; SIGTERM drains; restarts restore the counts."""

import json
import random
import signal
import threading
import time
import http.client
from collections import defaultdict

from exposition import series

BATCH = 20


def batch_body(batch_id):
    # Each batch has its own model label, so the store's content can be checked batch by batch.
    return json.dumps([
        {"endpoint": "/load", "provider": "load", "model": batch_id, "stages": {"backend_fetch": 0.25 + i / 1000}}
        for i in range(BATCH)
    ]).encode()


def counts_by_batch(server):
    counts = {}
    for labels, count in series(server.metrics_text(), "backend_ttfb_seconds_count").items():
        labels = dict(labels)
        if labels["provider"] == "load":
            counts[labels["model"]] = int(count)
    return counts


class Load:
    """Threads posting distinct batches until stopped; records which were acknowledged."""

    def __init__(self, server, round_name, threads=6, keyed=False):
        self.server = server
        self.keyed = keyed
        self.round_name = round_name
        self.acknowledged = set()
        self.unanswered = set()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(threads)]

    def run(self, thread):
        sequence = 0
        while not self.stopping.is_set():
            batch_id = f"{self.round_name}-{thread}-{sequence}"
            sequence += 1
            try:
                headers = {"Idempotency-Key": batch_id} if self.keyed else None
                response = self.server.post_events(batch_body(batch_id), headers=headers)
                ok = response.status == 200 and response.json()["accepted"] == BATCH
            except (ConnectionError, TimeoutError, OSError, http.client.HTTPException):
                ok = False
            with self.lock:
                (self.acknowledged if ok else self.unanswered).add(batch_id)
            if not ok:
                return  # the server is gone

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def test_sigkill_under_load_loses_no_acknowledged_event(make_perfgate):
    server = make_perfgate()
    rng = random.Random(7)
    acknowledged, unanswered = set(), set()
    for round_number in range(3):
        server.start()
        with Load(server, f"r{round_number}") as load:
            time.sleep(rng.uniform(0.8, 1.6))
            server.stop(signal.SIGKILL)
        acknowledged |= load.acknowledged
        unanswered |= load.unanswered
        assert len(load.acknowledged) > 10, "the load reached the server before the kill"

        server.start()
        restored = counts_by_batch(server)
        lost = [b for b in acknowledged if restored.get(b) != BATCH]
        assert not lost, f"acknowledged batches missing or partial after SIGKILL: {lost[:5]}"
        # A batch killed in flight is all there or not there at all: commits are atomic.
        torn = {b: restored[b] for b in unanswered if b in restored and restored[b] != BATCH}
        assert not torn, f"partially applied batches: {torn}"
        assert set(restored) <= acknowledged | unanswered
        server.stop(signal.SIGTERM)


def test_a_client_that_retries_with_idempotency_keys_counts_each_batch_exactly_once(make_perfgate):
    # An at-least-once client: after the crash it resends every batch it ever sent, answered or
    # not, with the same key. Each must then be counted once, neither lost nor doubled.
    server = make_perfgate().start()
    with Load(server, "keyed", keyed=True) as load:
        time.sleep(1.2)
        server.stop(signal.SIGKILL)
    assert len(load.acknowledged) > 10 and load.unanswered
    server.start()
    replayed = 0
    for batch_id in sorted(load.acknowledged | load.unanswered):
        response = server.post_events(batch_body(batch_id), headers={"Idempotency-Key": batch_id})
        assert response.status == 200 and response.json()["accepted"] == BATCH, response.text
        if batch_id in load.acknowledged:
            assert response.headers["Idempotent-Replayed"] == "true", batch_id
        replayed += response.headers["Idempotent-Replayed"] == "true"
    restored = counts_by_batch(server)
    assert restored == {batch_id: BATCH for batch_id in load.acknowledged | load.unanswered}
    assert f"perfgate_idempotent_replays_total {replayed}" in server.metrics_text()


def test_sigterm_under_load_drains_and_exits_cleanly(make_perfgate):
    server = make_perfgate().start()
    with Load(server, "term") as load:
        time.sleep(1.0)
        code = server.stop(signal.SIGTERM)
    assert code == 0, (server.log_path.read_text())[-2000:]
    server.start()
    restored = counts_by_batch(server)
    assert all(restored.get(b) == BATCH for b in load.acknowledged)
    assert set(restored) <= load.acknowledged | load.unanswered


def test_a_restart_shows_the_same_cumulative_counts(make_perfgate):
    server = make_perfgate().start()
    for n in range(5):
        server.post_events(batch_body(f"restart-{n}").decode())
    before = [line for line in server.metrics_text().splitlines() if not line.startswith(("perfgate_", "# "))]
    assert server.stop() == 0
    server.start()
    after = [line for line in server.metrics_text().splitlines() if not line.startswith(("perfgate_", "# "))]
    assert after == before
