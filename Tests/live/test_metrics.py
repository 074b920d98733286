"""GET /metrics checked with promtool, Prometheus' own Python parser, and an independent count."""

import gzip
import random
import shutil
import subprocess
from collections import defaultdict
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from exposition import samples, series, value

SEED_BUCKETS = {
    "backend_ttfb_seconds": ["0.1", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"],
    "streaming_duration_seconds": ["0.1", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"],
    "frontend_processing_seconds": ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5"],
    "request_stage_duration_seconds": ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "1.5", "2", "2.5", "3", "5", "10"],
}
LABELS = {
    "backend_ttfb_seconds": ("provider", "model", "endpoint"),
    "streaming_duration_seconds": ("provider", "model", "endpoint"),
    "frontend_processing_seconds": ("endpoint",),
    "request_stage_duration_seconds": ("stage", "endpoint"),
}
# frontend_processing: the three timed as one (what a trace with an uninstrumented frontend gives).
FRONTEND = ("request_parsing", "auth_validation", "request_preparation", "frontend_processing")


def random_events(count, rng):
    """Events with durations as exact decimal text, some on bucket bounds, some custom stages."""
    bounds = sorted({b for layout in SEED_BUCKETS.values() for b in layout}, key=Decimal)
    events = []
    for _ in range(count):
        stages = {}
        for stage in ("request_parsing", "auth_validation", "request_preparation", "backend_fetch", "stream_processing", "cache_lookup"):
            if rng.random() < 0.8:
                if rng.random() < 0.2:
                    stages[stage] = rng.choice(bounds)  # exactly on a bound: counts in that bucket
                else:
                    stages[stage] = str(Decimal(rng.randrange(0, 12_000_000)) / Decimal(1_000_000))
        if not stages:
            stages["backend_fetch"] = "0.25"
        events.append({
            "endpoint": rng.choice(["/v1/chat/completions", "/v1/responses", '/odd "quoted" \\ path']),
            "provider": rng.choice(["openrouter", "portkey", "unknown"]),
            "model": rng.choice(["gpt-4o", "claude-3", "llama-3.1-70b"]),
            "stages": stages,
        })
    return events


def encode(events):
    """JSON with the durations written exactly as generated."""
    import json

    parts = []
    for event in events:
        stages = ", ".join(f"{json.dumps(name)}: {text}" for name, text in event["stages"].items())
        parts.append(
            f'{{"endpoint": {json.dumps(event["endpoint"])}, "provider": {json.dumps(event["provider"])}, '
            f'"model": {json.dumps(event["model"])}, "stages": {{{stages}}}}}'
        )
    return "[" + ",\n".join(parts) + "]"


def expected_histograms(events):
    """Bucket counts (cumulative), sums and counts computed here, from the seed's definitions."""
    observations = defaultdict(list)
    for event in events:
        durations = {name: Decimal(text) for name, text in event["stages"].items()}
        for name, seconds in durations.items():
            observations[("request_stage_duration_seconds", (name, event["endpoint"]))].append(seconds)
        if "backend_fetch" in durations:
            observations[("backend_ttfb_seconds", (event["provider"], event["model"], event["endpoint"]))].append(durations["backend_fetch"])
        if "stream_processing" in durations:
            observations[("streaming_duration_seconds", (event["provider"], event["model"], event["endpoint"]))].append(durations["stream_processing"])
        frontend = [durations[s] for s in FRONTEND if s in durations]
        if frontend:
            observations[("frontend_processing_seconds", (event["endpoint"],))].append(sum(frontend))
    expected = {}
    for (metric, label_values), values in observations.items():
        labels = dict(zip(LABELS[metric], label_values))
        for bound in SEED_BUCKETS[metric] + ["+Inf"]:
            limit = Decimal("Infinity") if bound == "+Inf" else Decimal(bound)
            # The le text Python's prometheus_client writes for the same bound: canonical float form.
            le = floatToGoString(float(bound)) if bound != "+Inf" else bound
            expected[(metric + "_bucket", frozenset({**labels, "le": le}.items()))] = sum(1 for v in values if v <= limit)
        expected[(metric + "_sum", frozenset(labels.items()))] = sum(values, Decimal(0))
        expected[(metric + "_count", frozenset(labels.items()))] = len(values)
    return expected


def test_counts_sums_and_buckets_equal_an_independent_computation_exactly(perfgate):
    rng = random.Random(20261129)
    events = random_events(600, rng)
    # Bodies of every size: small ones reach the writer as single observations, large ones as
    # counts; both must come to the same figures.
    start = 0
    while start < len(events):
        size = rng.choice([1, 1, 1, 2, 5, 13, 150])
        body = events[start:start + size]
        response = perfgate.post_events(encode(body))
        assert response.status == 200 and response.json()["accepted"] == len(body), response.text
        start += size
    text = perfgate.metrics_text()
    actual = {}
    for name, labels, raw in samples(text):
        if any(name.startswith(metric) for metric in SEED_BUCKETS):
            actual[(name, frozenset(labels.items()))] = Decimal(raw)
    assert actual == expected_histograms(events)


def test_promtool_finds_nothing_to_report(perfgate):
    perfgate.post_events(encode(random_events(50, random.Random(1))))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by scripts/install-test-deps"
    result = subprocess.run([promtool, "check", "metrics"], input=perfgate.metrics_text(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_prometheus_client_parses_exactly_the_seed_families_and_perfgates_own(perfgate):
    perfgate.post_events(encode(random_events(50, random.Random(2))))
    families = {family.name: family for family in text_string_to_metric_families(perfgate.metrics_text())}
    seed = {name for name in families if not name.startswith("perfgate_")}
    assert seed == {"backend_ttfb_seconds", "streaming_duration_seconds", "frontend_processing_seconds", "request_stage_duration_seconds", "stage_percentage"}
    for name in SEED_BUCKETS:
        assert families[name].type == "histogram"
    assert families["stage_percentage"].type == "gauge"
    quoted = [s for s in families["backend_ttfb_seconds"].samples if s.labels.get("endpoint") == '/odd "quoted" \\ path']
    assert quoted, "label values with quotes and backslashes survive escaping"
    own = {name for name in families if name.startswith("perfgate_")}
    assert {"perfgate_events_accepted", "perfgate_events_rejected", "perfgate_batches", "perfgate_commit_duration_seconds", "perfgate_series", "perfgate_store_size_bytes"} <= own


def test_the_page_order_is_stable_and_sorted(perfgate):
    perfgate.post_events(encode(random_events(80, random.Random(3))))
    first, second = perfgate.metrics_text(), perfgate.metrics_text()
    seed_lines = lambda text: [line for line in text.splitlines() if "perfgate_" not in line]
    assert seed_lines(first) == seed_lines(second)
    families = [line.split()[2] for line in first.splitlines() if line.startswith("# TYPE")]
    assert families == sorted(families)


def test_stage_percentage_is_each_groups_share_of_the_endpoints_time(perfgate):
    perfgate.post_events([
        {"endpoint": "/e", "stages": {"request_parsing": 0.5, "backend_fetch": 6, "stream_processing": 3.5}},
        {"endpoint": "/e", "stages": {"backend_fetch": 4, "stream_processing": 1, "custom": 50}},
    ])
    text = perfgate.metrics_text()
    assert value(text, "stage_percentage", stage="frontend_processing", endpoint="/e") == Decimal("3.3333333333333335")
    assert value(text, "stage_percentage", stage="backend_response", endpoint="/e") == Decimal("66.66666666666666")
    assert value(text, "stage_percentage", stage="stream_processing", endpoint="/e") == Decimal("30")


def test_gzip_is_served_when_asked(perfgate):
    perfgate.post_events(encode(random_events(20, random.Random(4))))
    response = perfgate.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = gzip.decompress(response.body).decode()
    assert series(text, "backend_ttfb_seconds_count") == series(perfgate.metrics_text(), "backend_ttfb_seconds_count")
