"""Several perfgate replicas sharing one real PostgreSQL (a throwaway cluster per module).

Ground truth is computed here from the events each replica acknowledged: the sum of the
replicas' /metrics over `instance` must equal it exactly, through a SIGKILL of one replica and a
restart of PostgreSQL under load; trends and stage_percentage must be the same on every replica.
"""

import http.client
import json
import math
import random
import signal
import threading
import time
from collections import defaultdict
from decimal import Decimal

import pytest

from conftest import Perfgate
from exposition import samples, value
from postgres_server import PostgresServer
from test_metrics import FRONTEND, SEED_BUCKETS, encode, expected_histograms

BATCH = 12


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def replicas(tmp_path, postgres):
    """Builds unstarted replicas on one new database, each in its own folder; all are killed at the end."""
    url = postgres.new_database()
    made = []

    def make(name, args=()):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        server = Perfgate(folder, ["--db", url, "--instance", name, *args])
        made.append(server)
        return server

    make.url = url
    make.database = url.rsplit("/", 1)[1].split("?")[0]
    yield make
    for server in made:
        server.stop(signal.SIGKILL)


def batch_events(batch_id, rng):
    """Random timings; the batch's own model label shows whether the batch was applied, and every
    event has a backend_fetch so that the batch always has a series under that label."""
    events = []
    for _ in range(BATCH):
        stages = {"backend_fetch": str(Decimal(rng.randrange(1, 6_000_000)) / Decimal(1_000_000))}
        for stage in ("request_parsing", "auth_validation", "request_preparation", "stream_processing"):
            if rng.random() < 0.7:
                stages[stage] = str(Decimal(rng.randrange(0, 3_000_000)) / Decimal(1_000_000))
        events.append({
            "endpoint": rng.choice(["/v1/chat/completions", "/v1/responses"]),
            "provider": rng.choice(["openrouter", "portkey"]),
            "model": batch_id,
            "stages": stages,
        })
    return events


class RoundRobin:
    """Threads posting distinct batches to the replicas in turn until stopped; records what each
    answer said. A failed request is retried on the next replica after a pause, as a load
    balancer's client would, under a new batch id (no idempotency key: unanswered stays unknown)."""

    def __init__(self, servers, name, threads=4, seed=1):
        self.servers = servers
        self.name = name
        self.batches = {}
        self.acknowledged = set()
        self.unanswered = set()
        # Refused with "nothing was applied": must not count, unlike a refusal whose outcome is unknown.
        self.not_applied = set()
        self.refusals = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(threads)]

    def run(self, thread):
        sequence = 0
        while not self.stopping.is_set():
            batch_id = f"{self.name}-{thread}-{sequence}"
            server = self.servers[(thread + sequence) % len(self.servers)]
            sequence += 1
            with self.lock:
                events = batch_events(batch_id, self.rng)
                self.batches[batch_id] = events
            ok = False
            try:
                response = server.post_events(encode(events), timeout=15)
                ok = response.status == 200 and response.json()["accepted"] == BATCH
                if response.status == 503:
                    with self.lock:
                        self.refusals.append(response)
                        if "nothing was applied" in response.text:
                            self.not_applied.add(batch_id)
            except (ConnectionError, TimeoutError, OSError, http.client.HTTPException):
                pass
            with self.lock:
                (self.acknowledged if ok else self.unanswered).add(batch_id)
            if not ok:
                time.sleep(0.05)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)


def seed_histograms(server):
    return {
        (name, frozenset(labels.items())): Decimal(raw)
        for name, labels, raw in samples(server.metrics_text())
        if any(name.startswith(metric) for metric in SEED_BUCKETS)
    }


def summed(servers):
    """`sum without (instance)` over the replicas' seed histograms, zero samples left out."""
    total = defaultdict(Decimal)
    for server in servers:
        for key, number in seed_histograms(server).items():
            total[key] += number
    return {key: number for key, number in total.items() if number != 0}


def check_ground_truth(servers, load):
    """The replicas' sum equals the events of the acknowledged batches plus those of unanswered
    batches that were applied, each unanswered batch was applied whole or not at all, and none
    refused as not applied was."""
    total = summed(servers)
    applied = set(load.acknowledged)
    for batch_id in load.unanswered:
        count = sum(
            number for (name, labels), number in total.items()
            if name == "backend_ttfb_seconds_count" and dict(labels)["model"] == batch_id
        )
        assert count in (0, BATCH), f"batch {batch_id} applied in part: {count} of {BATCH}"
        assert not (count and batch_id in load.not_applied), f"batch {batch_id} was refused as not applied, yet counted"
        if count:
            applied.add(batch_id)
    expected = {key: number for key, number in expected_histograms([e for b in applied for e in load.batches[b]]).items() if number != 0}
    missing = {key: number for key, number in expected.items() if total.get(key) != number}
    assert not missing, f"{len(missing)} samples differ from ground truth, e.g. {list(missing.items())[:3]}"
    assert set(total) == set(expected)
    return applied


def wait_until(condition, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def same_minute(action):
    """Runs `action` so that it starts and ends in one wall-clock minute (trend windows move with it)."""
    while True:
        if time.time() % 60 > 55:
            time.sleep(60 - time.time() % 60 + 0.1)
        start = int(time.time() // 60)
        result = action()
        if int(time.time() // 60) == start:
            return result


def expected_shares(events):
    sums = defaultdict(lambda: [Decimal(0)] * 3)
    for event in events:
        stages = {name: Decimal(text) for name, text in event["stages"].items()}
        slot = sums[event["endpoint"]]
        slot[0] += sum((stages[s] for s in FRONTEND if s in stages), Decimal(0))
        slot[1] += stages.get("backend_fetch", Decimal(0))
        slot[2] += stages.get("stream_processing", Decimal(0))
    return {
        (group, endpoint): float(part / sum(parts) * 100)
        for endpoint, parts in sums.items()
        for group, part in zip(("frontend_processing", "backend_response", "stream_processing"), parts)
    }


def shares(server):
    return {
        (labels["stage"], labels["endpoint"]): float(raw)
        for name, labels, raw in samples(server.metrics_text()) if name == "stage_percentage"
    }


def true_quantile(values, q):
    """The quantile perfgate's exponential buckets approximate: the ceil(q*n)-th smallest value."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(len(ordered) * Decimal(str(q))) - 1)])


def test_three_replicas_sum_to_ground_truth_through_a_sigkill_and_answer_alike(replicas):
    servers = [replicas(name).start() for name in ("a", "b", "c")]
    with RoundRobin(servers, "kill", seed=20261201) as load:
        time.sleep(2.0)
        servers[1].stop(signal.SIGKILL)
        time.sleep(1.0)
        servers[1].start()  # the same instance name: its own counters come back
        time.sleep(1.5)
    assert len(load.acknowledged) > 50, "the load reached the replicas"
    assert load.unanswered, "the kill caught requests in flight"
    applied = check_ground_truth(servers, load)
    events = [e for b in applied for e in load.batches[b]]

    # stage_percentage: every replica's events in it, on every replica, once each has looked
    # at the others' minutes (once a second).
    expected = expected_shares(events)
    wait_until(lambda: all(shares(s) == pytest.approx(expected, rel=1e-9) for s in servers), what="every replica's shares to count every event")

    # Trends: the same answer from every replica, counting every replica's events.
    query = "/v1/trends?metric=backend_ttfb_seconds&quantile=0.9&by=provider&min_count=1"
    answers = same_minute(lambda: [s.get(query).json() for s in servers])
    assert answers[0] == answers[1] == answers[2]
    by_provider = defaultdict(list)
    for event in events:
        by_provider[event["provider"]].append(Decimal(event["stages"]["backend_fetch"]))
    groups = {g["labels"]["provider"]: g for g in answers[0]["groups"]}
    assert set(groups) == set(by_provider)
    for provider, values in by_provider.items():
        assert groups[provider]["current"]["count"] == len(values)
        # Exponential buckets of schema 6: within 2^(1/64) - 1 (1.09%) of the true quantile.
        assert groups[provider]["current"]["quantile"] == pytest.approx(true_quantile(values, 0.9), rel=0.011)

    # The status page reads every replica's minutes too.
    pages = same_minute(lambda: [s.get("/").text for s in servers])
    assert all("/v1/chat/completions" in page for page in pages)


def test_postgres_stopped_and_restarted_under_load_loses_nothing_acknowledged(replicas, postgres):
    servers = [replicas(name).start() for name in ("a", "b")]
    with RoundRobin(servers, "outage", seed=7) as load, postgres.restarted_at_exit():
        time.sleep(1.0)
        postgres.stop("fast")
        time.sleep(2.0)
        # Down: ingest answers 503 with Retry-After, and /readyz says why.
        for server in servers:
            response = server.post_events(encode(batch_events("probe", random.Random(1))), timeout=15)
            assert response.status == 503 and response.headers["Retry-After"], response.text
            ready = server.get("/readyz")
            assert ready.status == 503 and ready.json()["reason"] == "the store failed in the last 10 seconds", ready.text
            # Reads that need the store say so in JSON, naming no host, user or database.
            for path in ("/v1/trends?metric=backend_ttfb_seconds", "/"):
                read = server.get(path)
                assert read.status == 503 and read.headers["Retry-After"], (path, read.status, read.body[:200])
                assert "its store could not be read" in read.json()["error"] and "postgres" not in read.text.lower(), read.text
        postgres.start()
        postgres.wait_until_answering()
        # Back: ingest resumes by itself.
        acknowledged_before = len(load.acknowledged)
        wait_until(lambda: len(load.acknowledged) > acknowledged_before + 20, timeout=30, what="ingest to resume")
    assert load.refusals and all(r.headers["Retry-After"] for r in load.refusals)
    wait_until(lambda: all(s.get("/readyz").status == 200 for s in servers), what="/readyz to recover")
    check_ground_truth(servers, load)
    # What each replica shows is what the store holds for it, commits cut off by the outage
    # included: restarted, each reads its own rows back and shows the same counts.
    shown = [seed_histograms(s) for s in servers]
    for server in servers:
        server.stop()
        server.start()
    assert [seed_histograms(s) for s in servers] == shown


def test_a_retry_on_another_replica_is_applied_once(replicas):
    servers = [replicas(name).start() for name in ("a", "b", "c")]
    events = batch_events("keyed", random.Random(3))
    first = servers[0].post_events(encode(events), headers={"Idempotency-Key": "order-1"})
    assert first.status == 200 and "Idempotent-Replayed" not in first.headers
    again = servers[1].post_events(encode(events), headers={"Idempotency-Key": "order-1"})
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true" and again.body == first.body
    other = servers[2].post_events(encode(events[:3]), headers={"Idempotency-Key": "order-1"})
    assert other.status == 422 and "Idempotency-Key" in other.text

    # The same keys sent at once to every replica: each batch is applied once.
    keyed = {f"race-{n}": batch_events(f"race-{n}", random.Random(n)) for n in range(15)}

    def send(server):
        for key, batch in keyed.items():
            response = server.post_events(encode(batch), headers={"Idempotency-Key": key})
            assert response.status == 200, response.text

    threads = [threading.Thread(target=send, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    total = summed(servers)
    for key in keyed:
        count = sum(n for (name, labels), n in total.items() if name == "backend_ttfb_seconds_count" and dict(labels)["model"] == key)
        assert count == BATCH, f"{key} counted {count} times its events"
    replays = sum(value(s.metrics_text(), "perfgate_idempotent_replays_total") for s in servers)
    assert replays == 1 + 2 * len(keyed)


def test_replicas_starting_at_once_apply_each_migration_once(replicas, postgres):
    servers = [replicas(name) for name in ("a", "b", "c")]
    threads = [threading.Thread(target=server.start) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(server.get("/readyz").status == 200 for server in servers)
    versions = postgres.psql("SELECT version FROM schema_migrations ORDER BY version", database=replicas.database).split()
    assert versions == sorted(set(versions)) and versions[0] == "1"
    logs = [(server.workdir / "perfgate.log").read_text() for server in servers]
    assert sum(log.count("applied migration") for log in logs) == len(versions)


def test_the_password_never_reaches_the_log(replicas):
    # The throwaway cluster trusts loopback logins, so any password is taken; what is checked is
    # that perfgate never writes it.
    url = replicas.url.replace("perfgate@", "perfgate:s3cret-pass@")
    server = Perfgate(replicas("probe").workdir, ["--db", url, "--instance", "p"]).start()
    assert server.post_events(encode(batch_events("pw", random.Random(5)))).status == 200
    server.stop()
    log = (server.workdir / "perfgate.log").read_text()
    assert "s3cret-pass" not in log and "perfgate:***@" in log


def test_a_bad_url_or_an_unreachable_database_says_what_is_wrong(tmp_path):
    import subprocess

    from conftest import BINARY

    cases = [
        ("postgres://u@h/db?sslmode=sometimes", "sslmode=sometimes"),
        ("postgres://u@h:99999/db", "port"),
        ("postgres://u@h/db?bogus=1", "bogus"),
    ]
    for url, words in cases:
        result = subprocess.run([BINARY, "serve", "--db", url], capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert result.returncode != 0 and "--db" in result.stderr + result.stdout and words in result.stderr + result.stdout, result
    # Nothing listens on this port: start-up fails and names the database, without its password.
    from server_process import free_port

    url = f"postgres://u:hidden@127.0.0.1:{free_port()}/db?sslmode=disable"
    result = subprocess.run([BINARY, "serve", "--db", url, "--port", "0"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    output = result.stderr + result.stdout
    assert result.returncode != 0 and "127.0.0.1" in output and "hidden" not in output, output


def test_a_traces_spans_sent_to_different_replicas_become_one_event(replicas):
    from test_otlp import export, otlp_span

    servers = [replicas(name).start() for name in ("a", "b", "c")]
    start = time.time_ns() - 20_000_000_000
    trace_id, root_id = bytes(range(40, 56)), b"\x00" * 7 + b"\x01"
    backend = otlp_span(trace_id, b"\x00" * 7 + b"\x02", "backend_fetch", start, start + 1_250_000_000, parent=root_id,
                        attributes={"gen_ai.provider.name": "portkey", "gen_ai.request.model": "claude-3"})
    stream = otlp_span(trace_id, b"\x00" * 7 + b"\x03", "stream_processing", start, start + 400_000_000, parent=root_id)
    root = otlp_span(trace_id, root_id, "POST /chat", start, start + 2_000_000_000, attributes={"http.route": "/chat"})
    for server, span in zip(servers, (backend, stream, root)):
        assert export(server, [span]).status == 200
    total = summed(servers)
    labels = frozenset({"provider": "portkey", "model": "claude-3", "endpoint": "/chat"}.items())
    assert total[("backend_ttfb_seconds_sum", labels)] == Decimal("1.25")
    assert total[("streaming_duration_seconds_sum", labels)] == Decimal("0.4")
    assert total[("backend_ttfb_seconds_count", labels)] == 1


@pytest.fixture(scope="module")
def postgres_tls():
    server = PostgresServer(tls=True).start()
    yield server
    server.remove()


def test_tls_to_the_database_follows_sslmode(tmp_path, postgres_tls):
    """A server that takes TCP logins over TLS only: sslmode=disable is refused by it, require
    encrypts, verify-full checks the certificate against sslrootcert (and fails without it)."""
    import subprocess

    from conftest import BINARY

    url = postgres_tls.new_database().replace("?sslmode=disable", "")
    for name, query, works in (
        ("require", "?sslmode=require", True),
        ("verify", f"?sslmode=verify-full&sslrootcert={postgres_tls.certificate}", True),
        ("prefer", "", True),
        ("disable", "?sslmode=disable", False),
        ("untrusted", "?sslmode=verify-full", False),
    ):
        folder = tmp_path / name
        folder.mkdir()
        server = Perfgate(folder, ["--db", url + query, "--instance", name])
        if works:
            server.start()
            assert server.post_events(encode(batch_events(name, random.Random(9)))).status == 200
            assert "TLSv1" in postgres_tls.psql(
                f"SELECT string_agg(s.version, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'perfgate' AND s.ssl"
            )
            server.stop()
        else:
            result = subprocess.run([BINARY, "serve", "--db", url + query, "--port", "0"], capture_output=True, text=True, timeout=60, cwd=folder)
            assert result.returncode != 0, result.stdout
            assert "cannot start" in result.stdout + result.stderr
