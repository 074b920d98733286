"""The protobuf exposition with native histograms: read back with the published data model
(docs/prometheus-client-model.proto compiled by protoc), checked against the text page and the
raw events, and scraped by a real Prometheus with native histograms enabled."""

import json
import math
import random
import shutil
import time
import urllib.request

import pytest

from conftest import ROOT
from exposition import samples
from protos import message_class
from promql import dashboard_targets, resolve
from test_prometheus_end_to_end import Prometheus

NATIVE_DASHBOARD = json.loads((ROOT / "dashboards" / "performance-monitoring-native.json").read_text())

PROTOBUF_ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,"
                   "text/plain;version=0.0.4;q=0.3,*/*;q=0.1")
SCHEMA = 6


@pytest.fixture(scope="module")
def metric_family(tmp_path_factory):
    """The MetricFamily message class, from the .proto."""
    return message_class(ROOT / "docs" / "prometheus-client-model.proto", "io.prometheus.client.MetricFamily", tmp_path_factory.mktemp("proto"))


def read_delimited(body, message_class):
    families, position = [], 0
    while position < len(body):
        length, shift = 0, 0
        while True:
            byte = body[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        families.append(message_class.FromString(body[position:position + length]))
        position += length
    return families


def native_buckets(histogram):
    """{index: count} from spans and deltas."""
    buckets, index, count, deltas = {}, 0, 0, iter(histogram.positive_delta)
    for number, span in enumerate(histogram.positive_span):
        index = span.offset if number == 0 else index + span.offset
        for _ in range(span.length):
            count += next(deltas)
            buckets[index] = count
            index += 1
    return buckets


def native_quantile(q, histogram):
    """The quantile as histogram_quantile reads a native histogram: the bucket holding the rank."""
    buckets = native_buckets(histogram)
    rank, below = q * histogram.sample_count, histogram.zero_count
    if rank <= below:
        return 0.0
    for index in sorted(buckets):
        if below + buckets[index] >= rank:
            fraction = (rank - below) / buckets[index]
            return 2 ** ((index - 1 + fraction) / 2 ** SCHEMA)
        below += buckets[index]
    return math.nan


def exact_quantile(q, values):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def lognormal_traffic(rng, count, provider):
    events, ttfb = [], []
    for _ in range(count):
        seconds = round(math.exp(rng.gauss(math.log(1.3), 0.5)), 6)
        ttfb.append(seconds)
        events.append({"endpoint": "/v1/chat/completions", "provider": provider, "model": "m",
                       "stages": {"request_parsing": round(rng.uniform(0.0002, 0.004), 6), "backend_fetch": seconds,
                                  "stream_processing": round(rng.uniform(0.5, 6), 6)}})
    return events, ttfb


def test_the_protobuf_page_holds_what_the_text_page_holds_and_native_histograms_within_one_percent(perfgate, metric_family):
    rng = random.Random(20261201)
    events, ttfb = lognormal_traffic(rng, 900, "lognormal")
    for start in range(0, len(events), 300):
        assert perfgate.post_events(events[start:start + 300]).status == 200
    text = perfgate.metrics_text()
    response = perfgate.get("/metrics", headers={"Accept": PROTOBUF_ACCEPT})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
    families = {family.name: family for family in read_delimited(response.body, metric_family)}

    text_names = {name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for name, _, _ in samples(text)}
    assert text_names <= set(families), text_names - set(families)
    text_values = {(name, frozenset(labels.items())): value for name, labels, value in samples(text)}
    for family in families.values():
        for metric in family.metric:
            labels = {pair.name: pair.value for pair in metric.label}
            if family.type == 4:  # HISTOGRAM
                h = metric.histogram
                assert float(text_values[(family.name + "_count", frozenset(labels.items()))]) == h.sample_count
                assert math.isclose(float(text_values[(family.name + "_sum", frozenset(labels.items()))]), h.sample_sum, rel_tol=1e-9)
                for bucket in h.bucket:
                    le = next(raw_le for (name, items), _ in text_values.items() for key, raw_le in items
                              if name == family.name + "_bucket" and key == "le" and float(raw_le) == bucket.upper_bound
                              and frozenset(i for i in items if i[0] != "le") == frozenset(labels.items()))
                    assert float(text_values[(family.name + "_bucket", frozenset({**labels, "le": le}.items()))]) == bucket.cumulative_count
                if not family.name.startswith("perfgate_"):
                    assert h.schema == SCHEMA and h.zero_threshold == 0
                    assert h.zero_count + sum(native_buckets(h).values()) == h.sample_count
            elif not family.name.startswith("perfgate_"):  # perfgate's own move between two scrapes
                assert metric.gauge.value == float(text_values[(family.name, frozenset(labels.items()))]), family.name
            else:
                assert (family.name, frozenset(labels.items())) in text_values, family.name

    ttfb_metric = next(m for m in families["backend_ttfb_seconds"].metric if {p.name: p.value for p in m.label}["provider"] == "lognormal")
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = exact_quantile(q, ttfb)
        estimate = native_quantile(q, ttfb_metric.histogram)
        assert abs(estimate - exact) / exact < 0.011, (q, estimate, exact)


def test_prometheus_with_native_histograms_reads_p95_within_five_percent(make_perfgate, tmp_path):
    if shutil.which("prometheus") is None:
        raise RuntimeError("prometheus is not installed: run scripts/install-test-deps")
    server = make_perfgate().start()
    rng = random.Random(7)
    events, ttfb = lognormal_traffic(rng, 1200, "native")
    for start in range(0, len(events), 400):
        assert server.post_events(events[start:start + 400]).status == 200
    prometheus = Prometheus(tmp_path, server.port, extra_args=["--enable-feature=native-histograms"], rules=False)
    try:
        deadline = time.monotonic() + 60
        expr = 'histogram_quantile(0.95, sum(backend_ttfb_seconds{provider="native"}))'
        prometheus.wait_until("a native histogram", lambda: prometheus.query(expr), deadline)
        estimate = float(prometheus.query(expr)[0]["value"][1])
        exact = exact_quantile(0.95, ttfb)
        print(f"Prometheus p95 {estimate:.4f} s, exact {exact:.4f} s, error {abs(estimate - exact) / exact:.2%}")
        assert abs(estimate - exact) / exact < 0.05, (estimate, exact)
        assert float(prometheus.query('histogram_count(sum(backend_ttfb_seconds{provider="native"}))')[0]["value"][1]) == 1200
        # Every query of the native dashboard returns data from what Prometheus stored.
        for title, target in dashboard_targets(NATIVE_DASHBOARD):
            expr = resolve(target["expr"])
            prometheus.wait_until(f"data for {title}: {expr}", lambda: prometheus.query(expr), time.monotonic() + 20)
        # The text format is unchanged for scrapers that ask for it.
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    finally:
        prometheus.stop()
