"""alerts/prometheus-alerts-native.yml (generated from the classic rules; checked in
Tests/static/test_alert_rules.py) evaluated by a real Prometheus (2.42, native histograms on) over an hour of history written
into it by remote write. promtool 2.42 cannot read native histograms in unit tests, so the
degradation the seed's alert exists for is shown here: a p95 that rises 65% inside the 5-10 s
classic bucket is degrading in the native rules and invisible to the classic ones."""

import math
import random
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from conftest import free_port
from protos import message_class

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
SCHEMA = 6
CLASSIC_BOUNDS = [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0]


def rules(path):
    return {rule["alert"]: rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}


def snappy_literal(data):
    """Snappy's block format holding `data` as literals only: valid, and no compressor needed."""
    out, length = bytearray(), len(data)
    while True:
        out.append((length & 0x7F) | (0x80 if length >= 0x80 else 0))
        length >>= 7
        if not length:
            break
    for start in range(0, len(data), 65536):
        chunk = data[start:start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2, n & 0xFF, n >> 8])
        out += chunk
    return bytes(out)


def exponential_index(value):
    # The smallest i with value <= 2^(i/64), as perfgate (and client_golang) compute it.
    fraction, exponent = math.frexp(value)
    bounds = [2 ** (j / 2 ** SCHEMA) / 2 for j in range(2 ** SCHEMA)]
    return next(j for j, bound in enumerate(bounds) if bound >= fraction) + (exponent - 1) * 2 ** SCHEMA


class History:
    """Cumulative histograms of one series over time, native and classic, as perfgate serves them."""

    def __init__(self):
        self.native, self.classic, self.count, self.sum = {}, [0] * (len(CLASSIC_BOUNDS) + 1), 0, 0.0

    def observe(self, value):
        index = exponential_index(value)
        self.native[index] = self.native.get(index, 0) + 1
        self.classic[next((i for i, b in enumerate(CLASSIC_BOUNDS) if value <= b), len(CLASSIC_BOUNDS))] += 1
        self.count += 1
        self.sum += value

    def native_sample(self, histogram, timestamp):
        histogram.count_int, histogram.sum, histogram.schema, histogram.zero_threshold = self.count, self.sum, SCHEMA, 0
        histogram.zero_count_int, histogram.timestamp = 0, timestamp
        previous_end, previous_count = None, 0
        for index in sorted(self.native):
            if previous_end is None or index != previous_end:
                span = histogram.positive_spans.add()
                span.offset, span.length = (index if previous_end is None else index - previous_end), 0
            histogram.positive_spans[-1].length += 1
            histogram.positive_deltas.append(self.native[index] - previous_count)
            previous_count, previous_end = self.native[index], index + 1


def test_a_rise_inside_a_classic_bucket_is_degrading_for_the_native_rules_only(tmp_path):
    if shutil.which("prometheus") is None or shutil.which("protoc") is None:
        raise RuntimeError("prometheus or protoc is not installed: run scripts/install-test-deps")
    WriteRequest = message_class(Path(__file__).parent / "remote_write.proto", "prometheus.WriteRequest", tmp_path)
    rng = random.Random(13)
    now_ms = int(time.time() * 1000) // 15000 * 15000
    history = History()
    request = WriteRequest()
    native = request.timeseries.add()
    labels = {"provider": "p", "model": "m", "endpoint": "/v1/chat/completions", "job": "perfgate", "instance": "backfill"}
    for name, value in sorted({"__name__": "backend_ttfb_seconds", **labels}.items()):
        label = native.labels.add()
        label.name, label.value = name, value
    classic = {}
    for bucket, bound in enumerate(CLASSIC_BOUNDS + [math.inf]):
        series = request.timeseries.add()
        le = "+Inf" if bound == math.inf else repr(bound)
        for name, value in sorted({"__name__": "backend_ttfb_seconds_bucket", **labels, "le": le}.items()):
            label = series.labels.add()
            label.name, label.value = name, value
        classic[bucket] = series
    # 75 minutes at a 15 s step: 5.2-6.0 s for the first 70, 8.5-9.9 s for the last 5 (+65% at p95).
    steps = 75 * 4
    for step in range(steps + 1):
        timestamp = now_ms - (steps - step) * 15000
        recent = step > steps - 5 * 4
        for _ in range(25):
            history.observe(rng.uniform(8.5, 9.9) if recent else rng.uniform(5.2, 6.0))
        history.native_sample(native.histograms.add(), timestamp)
        cumulative = 0
        for bucket, series in classic.items():
            cumulative += history.classic[bucket]
            sample = series.samples.add()
            sample.value, sample.timestamp = cumulative, timestamp

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global:\n  evaluation_interval: 1s\nrule_files:\n  - {ALERTS / 'prometheus-alerts-native.yml'}\n")
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--enable-feature=native-histograms", "--web.enable-remote-write-receiver", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        body = snappy_literal(request.SerializeToString())
        deadline = time.monotonic() + 30
        while True:
            try:
                post = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/write", data=body, method="POST", headers={
                    "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"})
                with urllib.request.urlopen(post, timeout=10) as response:
                    assert response.status in (200, 204)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

        def query(expr):
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": now_ms / 1000})
            with urllib.request.urlopen(url, timeout=10) as response:
                import json
                return json.load(response)["data"]["result"]

        native_rules, classic_rules = rules(ALERTS / "prometheus-alerts-native.yml"), rules(ALERTS / "prometheus-alerts.yml")
        now = float(query('histogram_quantile(0.95, sum by (provider, model) (rate(backend_ttfb_seconds[5m])))')[0]["value"][1])
        then = float(query('histogram_quantile(0.95, sum by (provider, model) (rate(backend_ttfb_seconds[5m] offset 1h)))')[0]["value"][1])
        print(f"native p95 {then:.3f} s -> {now:.3f} s")
        assert now / then > 1.5, (now, then)
        fired = query(native_rules["BackendTTFBDegrading"]["expr"])
        assert [(r["metric"]["provider"], r["metric"]["model"]) for r in fired] == [("p", "m")], fired
        # The classic buckets put both p95s in the 5-10 s bucket at the same place: no alert.
        assert query(classic_rules["BackendTTFBDegrading"]["expr"]) == []
        classic_now = float(query('histogram_quantile(0.95, sum by (le, provider, model) (rate(backend_ttfb_seconds_bucket[5m])))')[0]["value"][1])
        classic_then = float(query('histogram_quantile(0.95, sum by (le, provider, model) (rate(backend_ttfb_seconds_bucket[5m] offset 1h)))')[0]["value"][1])
        print(f"classic p95 {classic_then:.3f} s -> {classic_now:.3f} s")
        assert classic_now / classic_then < 1.5, (classic_now, classic_then)
        # Every native rule evaluates without error.
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as response:
                import json
                groups = json.load(response)["data"]["groups"]
            evaluated = [rule for group in groups for rule in group["rules"] if rule.get("lastEvaluation", "").startswith("20")]
            if len(evaluated) == 11 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(evaluated) == 11 and all(rule["health"] == "ok" for rule in evaluated), [(r["name"], r.get("lastError")) for r in evaluated]
    finally:
        process.terminate()
        process.wait(15)
        log.close()
