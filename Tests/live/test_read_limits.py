"""Whole-retention reads of a large store take turns and stay cheap for everything else. The store
holds 1,000 series (500 provider/model pairs in backend_ttfb_seconds and in
streaming_duration_seconds) with a row for every minute of the default 1d1h retention: 1.5 M rows.

- Eight clients reading at once (whole-retention trend queries and status pages) leave ingest's
  latency close to what it is idle, as the readers run in the idle scheduling class; every read is answered; and
  the server's anonymous memory stays small, as a read costs memory by the series it folds, not
  by the rows it reads.
- Past --max-queued-reads waiting reads, a read is answered 503 at once, with a Retry-After of 1
  to 60 seconds and an error naming the flag, and is counted in perfgate_reads_refused_total.

The store is written straight into SQLite (posting 1.5 M events to a debug build would take too
long), in the format perfgate writes: classic buckets as little-endian uint64 counts, +Inf last;
exponential buckets as PerfgateCore/Metrics/ExponentialEncoding.swift describes. The count and
p95 /v1/trends reports for one pair are checked against the observations written for it."""
import calendar
import http.client
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import struct
import threading
import time

import pytest

from conftest import Perfgate
from exposition import value

ENDPOINT = "/v1/chat/completions"
FAMILIES = ("backend_ttfb_seconds", "streaming_duration_seconds")
BOUNDS_TEXT = "0.1,0.5,1,1.5,2,2.5,3,5,10"
BOUNDS_NS = [int(round(float(bound) * 1e9)) for bound in BOUNDS_TEXT.split(",")]
PAIRS = 500
RETENTION_MINUTES = 25 * 60
PROFILES = 12
CHECKED_PAIR = 137
WHOLE_TREND = "/v1/trends?metric=backend_ttfb_seconds&window=24h&offset=1h&by=provider,model"
WHOLE_STATUS = "/?window=24h"
# Linux's idle scheduling class, where the store's reader threads run.
SCHED_IDLE = 5
SMALL_TREND = "/v1/trends?metric=backend_ttfb_seconds&window=5m&by=provider,model"


def pair_labels(pair):
    return f"provider-{pair // 10:02d}", f"model-{pair % 10}"


# The store's encodings.

def varint(number):
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def exponential_index(nanoseconds):
    """The schema-6 bucket of a duration: the smallest i with seconds <= 2^(i/64)."""
    seconds = nanoseconds / 1e9
    index = math.ceil(64 * math.log2(seconds))
    while 2 ** ((index - 1) / 64) >= seconds:
        index -= 1
    while 2 ** (index / 64) < seconds:
        index += 1
    return index


def exponential_blob(observations):
    """Schema byte 6, the zero count, the number of buckets, then per bucket its index as a
    zig-zag step from the previous one (from 0 for the first) and its count, all varints."""
    counts = {}
    for nanoseconds in observations:
        index = exponential_index(nanoseconds)
        counts[index] = counts.get(index, 0) + 1
    out = bytearray([6]) + varint(0) + varint(len(counts))
    previous = 0
    for index in sorted(counts):
        step = index - previous
        out += varint((step << 1) ^ (step >> 63)) + varint(counts[index])
        previous = index
    return bytes(out)


def classic_blob(observations):
    counts = [0] * (len(BOUNDS_NS) + 1)
    for nanoseconds in observations:
        counts[next((k for k, bound in enumerate(BOUNDS_NS) if nanoseconds <= bound), len(BOUNDS_NS))] += 1
    return struct.pack(f"<{len(counts)}Q", *counts)


def minute_row(rng, mu, sigma):
    """One series-minute of one to six lognormal observations: (observations, buckets, sum_s,
    sum_ns, exponential)."""
    observations = [max(1, int(rng.lognormvariate(mu, sigma) * 1e9)) for _ in range(rng.randint(1, 6))]
    total = sum(observations)
    return observations, classic_blob(observations), total // 10**9, total % 10**9, exponential_blob(observations)


def fill(database, rng):
    """Writes the series and a row for each of them in every minute of the retention, up to the
    current minute; returns the observations written to CHECKED_PAIR's TTFB series, by minute."""
    # Rows are drawn from a pool per latency profile, so that 1.5 M rows take seconds to make.
    pools = {
        family: [[minute_row(rng, math.log(base + 0.15 * profile), 0.45) for _ in range(800)] for profile in range(PROFILES)]
        for family, base in zip(FAMILIES, (0.2, 0.8))
    }
    series = [
        (f * PAIRS + pair + 1, family, "\x1f".join([*pair_labels(pair), ENDPOINT]), pair)
        for f, family in enumerate(FAMILIES) for pair in range(PAIRS)
    ]
    checked_id = CHECKED_PAIR + 1
    checked = {}
    now_minute = int(time.time()) // 60

    def rows():
        for minute in range(now_minute - RETENTION_MINUTES + 1, now_minute + 1):
            for id, family, _, pair in series:
                observations, buckets, sum_s, sum_ns, exponential = rng.choice(pools[family][pair % PROFILES])
                if id == checked_id:
                    checked[minute] = observations
                yield minute, id, buckets, sum_s, sum_ns, exponential

    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA synchronous = OFF")
        with connection:
            layout = dict(connection.execute("SELECT metric, bounds FROM bucket_layout"))
            assert all(layout[family] == BOUNDS_TEXT for family in FAMILIES), layout
            assert connection.execute("SELECT count(*) FROM series").fetchone()[0] == 0
            connection.executemany(
                "INSERT INTO series (id, metric, label_values, exponential_complete) VALUES (?, ?, ?, 1)",
                [(id, family, labels) for id, family, labels, _ in series],
            )
            connection.executemany(
                "INSERT INTO rollup (minute, series_id, buckets, sum_s, sum_ns, exponential) VALUES (?, ?, ?, ?, ?, ?)", rows()
            )
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    assert series[checked_id - 1][1:] == (FAMILIES[0], "\x1f".join([*pair_labels(CHECKED_PAIR), ENDPOINT]), CHECKED_PAIR)
    return checked


class Store:
    """A filled store file, and the observations written to one pair's TTFB series by minute."""

    def __init__(self, path, checked):
        self.path = path
        self.checked = checked

    def copy_to(self, workdir):
        (workdir / "data").mkdir(parents=True)
        shutil.copyfile(self.path, workdir / "data" / "perfgate.sqlite")
        on_disk(workdir / "data" / "perfgate.sqlite")
        return workdir


def on_disk(path):
    """Writes the file's pages out now: left to the kernel's writeback, 190 MB of them would go
    out during the measurements and stall perfgate's fsyncs behind them."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("store")
    # perfgate makes the schema; the rows are written while it is stopped.
    Perfgate(workdir).start().stop()
    database = workdir / "data" / "perfgate.sqlite"
    checked = fill(database, random.Random(20261208))
    on_disk(database)
    return Store(database, checked)


@pytest.fixture(scope="module")
def served_store(store, tmp_path_factory):
    """perfgate with its default settings on a copy of the store, for the tests that compare its
    read figures before and after (start-up restores 1.5 M rows: several seconds)."""
    server = Perfgate(store.copy_to(tmp_path_factory.mktemp("served"))).start(timeout=90)
    yield server
    server.stop()


# Reading perfgate.

def memory_mb(pid):
    """VmRSS and RssAnon of a process, in MB. VmRSS counts the pages of the store file SQLite has
    read and of the binary; RssAnon is what the process allocated."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(rest.split()[0]) / 1024
    return fields["VmRSS"], fields["RssAnon"]


def thread_cpu(pid):
    """{thread id: (scheduling policy, CPU seconds)} of every thread of a process."""
    ticks = os.sysconf("SC_CLK_TCK")
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        # Counted from the state (field 3): utime is field 14, stime 15, policy 41.
        threads[tid] = (int(fields[38]), (int(fields[11]) + int(fields[12])) / ticks)
    return threads


def reads_figures(server):
    # /metrics holds the 1,000 series' buckets too (1.4 MB): only the read gate's lines are parsed.
    text = "\n".join(line for line in server.metrics_text().split("\n") if line.startswith("perfgate_reads_"))
    return {name: value(text, f"perfgate_reads_{name}") for name in ("running", "waiting", "refused_total", "cancelled_total")}


def percentile(values, fraction):
    """The value at rank ceil(fraction * n)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def timed_get(server, path, timeout=120):
    started = time.monotonic()
    response = server.request("GET", path, timeout=timeout)
    return response, time.monotonic() - started


def raw_get(port, path):
    """A socket that has sent GET `path` and not read its answer."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    return sock


def read_answer(sock, timeout):
    """(status, headers by lower-case name, body) of an answer read until the server closes."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {name.strip().lower(): text.strip() for name, _, text in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body[: int(headers.get("content-length", len(body)))]


def answers_in_parallel(socks, timeout=120):
    """Each socket's (status, headers, body, seconds from now until its answer ended)."""
    started = time.monotonic()
    answers = [None] * len(socks)

    def read(index):
        answers[index] = (*read_answer(socks[index], timeout), time.monotonic() - started)

    threads = [threading.Thread(target=read, args=(index,)) for index in range(len(socks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def minute_of(rfc3339):
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")) // 60


def assert_store_reads_back(server, store):
    """perfgate read every row back whole, and the whole-retention trend query lists every pair,
    the checked pair with the count of the events written to its current window and their p95
    within 2%; returns the query's seconds."""
    damaged = value(server.metrics_text(), "perfgate_store_corrupt_rows_total")
    assert damaged == 0, damaged
    response, seconds = timed_get(server, WHOLE_TREND)
    assert response.status == 200, response.body[:300]
    trend = response.json()
    assert len(trend["groups"]) == PAIRS, len(trend["groups"])
    provider, model = pair_labels(CHECKED_PAIR)
    group = next(g for g in trend["groups"] if g["labels"] == {"provider": provider, "model": model})
    start, end = (minute_of(trend["current_window"][edge]) for edge in ("start", "end"))
    assert end - start == 24 * 60, trend["current_window"]
    observations = [ns for minute, written in store.checked.items() if start <= minute < end for ns in written]
    assert group["current"]["count"] == len(observations), (group, len(observations))
    assert group["resolution"] == "exponential", group
    p95 = percentile(observations, 0.95) / 1e9
    assert abs(group["current"]["quantile"] - p95) <= 0.02 * p95, (group, p95)
    print(f"whole-retention trend query alone: {seconds:.2f} s; {provider}/{model}: {len(observations)} events, "
          f"p95 {p95:.4f} s written, {group['current']['quantile']:.4f} s reported")
    return seconds


def assert_status_page_counts_every_pair(server):
    """The 24h status page accounts for every pair: those it lists and those it says it left out."""
    response = server.get(WHOLE_STATUS)
    assert response.status == 200, response.body[:300]
    listed = response.text.count("<tr data-provider=")
    quieter = re.search(r"(\d+) quieter pairs are not listed", response.text)
    assert listed > 0 and quieter and listed + int(quieter.group(1)) == PAIRS, (listed, quieter)


# Ingest latency.

INGEST_EVENT = json.dumps({
    "endpoint": ENDPOINT, "provider": "ingest-probe", "model": "m", "stages": {"backend_fetch": 0.25},
}).encode()


def ingest_latencies(server, done, interval=0.01):
    """Posts one event at a time on one keep-alive connection, `interval` apart, until `done()`;
    returns each request's seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    latencies = []
    try:
        while not done():
            started = time.perf_counter()
            connection.request("POST", "/v1/events", INGEST_EVENT, {"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
            latencies.append(time.perf_counter() - started)
            assert response.status == 200 and json.loads(body)["accepted"] == 1, body
            time.sleep(interval)
    finally:
        connection.close()
    return latencies


def posts(count):
    """A `done` for ingest_latencies: true after `count` calls."""
    left = iter(range(count))
    return lambda: next(left, None) is None


# The tests.

# Eight reads at once, half trend queries and half status pages: on the debug build a trend query
# alone takes 2 to 4 s and a page 5 to 7 s, so they keep the readers (and both cores) busy for
# about 25 s.
READERS = 8
IDLE_POSTS = 300
# Loopback p99s of a few ms (every commit is fsynced) move by several ms from run to run on a
# 2-core machine: the busy p99 may be twice the idle one plus this.
LATENCY_SLACK = 0.005
# RssAnon is about 15 MB after start-up and 30 to 40 MB after a first trend query and status page;
# it peaked at about 60 MB with eight reads waiting or running. A status page that held its 1.5 M
# rows would need 120 MB for their classic counts alone.
RSS_ANON_BOUND_MB = 150


def test_eight_readers_leave_ingest_latency_and_memory_bounded(store, served_store):
    server = served_store
    pid = server.process.pid
    assert_store_reads_back(server, store)
    assert_status_page_counts_every_pair(server)
    _, anon_idle = memory_mb(pid)
    before = reads_figures(server)
    idle = ingest_latencies(server, posts(IDLE_POSTS))

    reads = []
    memory = []

    def reader(path):
        response, seconds = timed_get(server, path)
        reads.append((path, response.status, seconds))

    threads = [threading.Thread(target=reader, args=([WHOLE_TREND, WHOLE_STATUS][index % 2],)) for index in range(READERS)]
    reading = lambda: any(thread.is_alive() for thread in threads)

    def sample_memory():
        while reading():
            memory.append(memory_mb(pid))
            time.sleep(0.1)

    cpu_before = thread_cpu(pid)
    for thread in threads:
        thread.start()
    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    time.sleep(0.2)  # the reads are in
    during = reads_figures(server)
    busy = ingest_latencies(server, lambda: not reading())
    sampler.join()
    cpu_after = thread_cpu(pid)
    after = reads_figures(server)
    # Idle again, so that the machine's own noise weighs on both sides alike.
    idle += ingest_latencies(server, posts(IDLE_POSTS))

    idle_p99, busy_p99 = percentile(idle, 0.99), percentile(busy, 0.99)
    times = {}
    for path, status, seconds in reads:
        times.setdefault((path, status), []).append(seconds)
    peak_rss = max(rss for rss, _ in memory)
    peak_anon = max(anon for _, anon in memory)
    niced = {tid for tid, (policy, _) in cpu_after.items() if policy == SCHED_IDLE}
    spent = {tid: seconds - cpu_before.get(tid, (0, 0))[1] for tid, (_, seconds) in cpu_after.items()}
    niced_share = sum(spent[tid] for tid in niced) / max(sum(spent.values()), 1e-9)
    print(f"ingest: idle p99 {idle_p99 * 1000:.2f} ms over {len(idle)} posts before and after; busy p99 {busy_p99 * 1000:.2f} ms "
          f"over {len(busy)} posts (busy p50 {percentile(busy, 0.5) * 1000:.2f} ms, max {max(busy) * 1000:.2f} ms)")
    for (path, status), seconds in sorted(times.items()):
        print(f"{path} -> {status}: {len(seconds)} reads, mean {sum(seconds) / len(seconds):.2f} s, "
              f"max {max(seconds):.2f} s (waiting included)")
    print(f"memory: RssAnon {anon_idle:.0f} MB before, {peak_anon:.0f} MB at most while reading; VmRSS at most {peak_rss:.0f} MB")
    print(f"perfgate CPU while reading: {sum(spent.values()):.1f} s, {niced_share:.0%} of it on {len(niced)} threads of the idle scheduling class")

    assert during["running"] == 2 and during["waiting"] == READERS - 2, during
    assert len(reads) == READERS and all(status == 200 for _, status, _ in reads), times.keys()
    # Nothing refused or called off, and nothing left running or waiting.
    assert after == before and after["running"] == after["waiting"] == 0, (before, after)
    assert peak_anon < RSS_ANON_BOUND_MB, (anon_idle, peak_anon)
    # The store was read on threads of the idle class, and they took most of perfgate's CPU.
    # Only the two reader threads: a thread made by one would inherit the class (the event loops
    # and the concurrency runtime's workers once did, and ingest then waited behind reads).
    assert len(niced) == 2 and niced_share > 0.5, (niced_share, cpu_after)
    assert busy_p99 <= 2 * idle_p99 + LATENCY_SLACK, (idle_p99, busy_p99)


def test_reads_past_the_queue_are_refused_at_once_with_retry_after(store, tmp_path):
    sent = 6
    server = Perfgate(store.copy_to(tmp_path), ["--max-queued-reads", "1"]).start(timeout=90)
    try:
        # One read first: the pace a refused client's Retry-After is reckoned from.
        first, full_read = timed_get(server, WHOLE_TREND)
        assert first.status == 200
        sending = time.monotonic()
        socks = [raw_get(server.port, WHOLE_TREND) for _ in range(sent)]
        spread = time.monotonic() - sending
        answers = answers_in_parallel(socks)
        figures = reads_figures(server)
    finally:
        server.stop()

    served = [answer for answer in answers if answer[0] == 200]
    refused = [answer for answer in answers if answer[0] == 503]
    print(f"whole-retention trend query alone: {full_read:.2f} s; {sent} sent within {spread * 1000:.1f} ms: "
          f"{len(served)} served (the last after {max(a[3] for a in served):.2f} s), {len(refused)} refused "
          f"(Retry-After {sorted(a[1].get('retry-after') for a in refused)}, answered within {max(a[3] for a in refused) * 1000:.0f} ms)")
    # All six are in long before the first of them is done: two run, one waits, the rest are refused.
    assert spread < full_read / 4, (spread, full_read)
    assert len(served) == 3 and len(refused) == sent - 3, [answer[0] for answer in answers]
    for _, headers, body, seconds in refused:
        retry_after = headers.get("retry-after", "")
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, headers
        # Two reads run and one waits ahead of it: it is told to come back no sooner than one read takes.
        assert int(retry_after) >= int(full_read), (retry_after, full_read)
        assert headers.get("content-type", "").startswith("application/json"), headers
        assert "--max-queued-reads" in json.loads(body)["error"], body
        assert seconds < full_read / 2, seconds
    for _, _, body, _ in served:
        assert len(json.loads(body)["groups"]) == PAIRS
    assert figures == {"running": 0, "waiting": 0, "refused_total": len(refused), "cancelled_total": 0}, figures
