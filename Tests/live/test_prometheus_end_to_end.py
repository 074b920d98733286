"""perfgate, a real Prometheus scraping it every second with the alert rules loaded, and known
traffic with one slow provider: the dashboard's queries, the seed's example queries and the
alerts all work against what Prometheus actually stored."""

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port
from promql import dashboard_targets, resolve, variable_selector

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "dashboards" / "performance-monitoring.json").read_text())

# Every batch holds one event of each provider, so the two are always counted equally.
STAGES = {"request_parsing": 0.001, "auth_validation": 0.0005, "request_preparation": 0.0005, "stream_processing": 1.2}
BATCH = [
    {"endpoint": "/v1/chat/completions", "provider": "fastco", "model": "m-fast", "stages": {**STAGES, "backend_fetch": 0.8}},
    {"endpoint": "/v1/chat/completions", "provider": "slowco", "model": "m-slow", "stages": {**STAGES, "backend_fetch": 4.0}},
]


class Prometheus:
    def __init__(self, folder, perfgate_port, extra_args=(), rules=True):
        self.port = free_port()
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            + (f"rule_files:\n  - {ROOT / 'alerts' / 'prometheus-alerts.yml'}\n" if rules else "")
            + f"scrape_configs:\n  - job_name: perfgate\n    static_configs:\n      - targets: ['127.0.0.1:{perfgate_port}']\n"
        )
        self.log = open(folder / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def wait_until(self, what, check, deadline):
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never had {what}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def stack(make_perfgate, tmp_path):
    if shutil.which("prometheus") is None:
        raise RuntimeError("prometheus is not installed: run scripts/install-test-deps")
    server = make_perfgate().start()
    prometheus = Prometheus(tmp_path, server.port)
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            assert server.post_events(BATCH).status == 200
            stop.wait(0.2)

    feeder = threading.Thread(target=traffic)
    feeder.start()
    try:
        yield prometheus
    finally:
        stop.set()
        feeder.join(10)
        prometheus.stop()


def by_label(result, label):
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in result}


def test_dashboard_seed_queries_and_alerts_against_a_real_prometheus(stack):
    deadline = time.monotonic() + 90
    p95_by_provider = "histogram_quantile(0.95, sum(rate(backend_ttfb_seconds_bucket[5m])) by (le, provider))"
    stack.wait_until("both providers' TTFB p95", lambda: set(by_label(stack.query(p95_by_provider), "provider")) == {"fastco", "slowco"}, deadline)

    # The seed's example queries, against what the traffic must give: constant durations, so
    # each quantile is interpolated inside the bucket that holds them.
    p95 = by_label(stack.query(p95_by_provider), "provider")
    assert p95["fastco"] == pytest.approx(0.5 + 0.95 * 0.5)  # 0.8 s in (0.5, 1]
    assert p95["slowco"] == pytest.approx(3 + 0.95 * 2)      # 4 s in (3, 5]
    overall = stack.query("histogram_quantile(0.95, sum(rate(backend_ttfb_seconds_bucket[5m])) by (le))")
    assert float(overall[0]["value"][1]) == pytest.approx(3 + (0.95 - 0.5) / 0.5 * 2)  # half the requests in (3, 5]
    streaming = stack.query("histogram_quantile(0.95, sum(rate(streaming_duration_seconds_bucket[5m])) by (le))")
    assert float(streaming[0]["value"][1]) == pytest.approx(1 + 0.95 * 0.5)  # 1.2 s in (1, 1.5]
    means = by_label(stack.query(
        "sum(rate(request_stage_duration_seconds_sum[5m])) by (stage) / sum(rate(request_stage_duration_seconds_count[5m])) by (stage)"), "stage")
    assert means["backend_fetch"] == pytest.approx((0.8 + 4.0) / 2)
    assert means["stream_processing"] == pytest.approx(1.2)
    assert means["request_parsing"] == pytest.approx(0.001)
    backend_share = stack.query('avg(stage_percentage{stage="backend_response"})')
    assert float(backend_share[0]["value"][1]) == pytest.approx(100 * 2.4 / (0.002 + 2.4 + 1.2), rel=1e-6)

    # Every dashboard query, with every variable at All, returns data.
    for title, target in dashboard_targets(DASHBOARD):
        expr = resolve(target["expr"])
        assert stack.query(expr), f"{title}: no data for {expr}"
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            label = variable["query"]["query"].rsplit(",", 1)[1].strip(" )")
            values = stack.api(f"label/{label}/values", **{"match[]": resolve(variable_selector(variable["query"]["query"]))})
            assert values, f"variable {variable['name']} lists nothing"
    providers = stack.api("label/provider/values", **{"match[]": "backend_ttfb_seconds_count"})
    assert set(providers) == {"fastco", "slowco"}

    # The rules load and evaluate without errors; the slow provider's alerts go pending.
    def rules_evaluated():
        rules = [rule for group in stack.api("rules")["groups"] for rule in group["rules"]]
        return len(rules) == 11 and all(rule["health"] == "ok" for rule in rules)
    stack.wait_until("all 11 rules evaluated", rules_evaluated, deadline)
    for group in stack.api("rules")["groups"]:
        for rule in group["rules"]:
            assert not rule.get("lastError"), f"{rule['name']}: {rule['lastError']}"

    # Each rule group is evaluated on its own schedule: wait for all of the slow provider's.
    expected = {("SlowProviderTTFB", "slowco"), ("HighBackendTTFB", "slowco"), ("CriticalBackendTTFB", "slowco")}

    def active():
        return {(a["labels"]["alertname"], a["labels"].get("provider", "")) for a in stack.api("alerts")["alerts"]
                if a["state"] in ("pending", "firing")}
    stack.wait_until("the slow provider's alerts pending", lambda: expected <= active(), deadline)
    assert not any(provider == "fastco" for _, provider in active())
