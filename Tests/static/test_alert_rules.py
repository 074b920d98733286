"""alerts/prometheus-alerts.yml: every alert of the seed, checked and unit-tested by promtool; and
prometheus-alerts-native.yml: the same rules over native histograms, generated from them."""

import re
import subprocess
from pathlib import Path

import yaml

ALERTS = Path(__file__).resolve().parents[2] / "alerts"
SEED_ALERTS = {
    # name: (severity, threshold in the expression, for)
    "HighBackendTTFB": ("warning", "> 2\n", "5m"),
    "CriticalBackendTTFB": ("critical", "> 3\n", "2m"),
    "HighStreamingDuration": ("warning", "> 1.5\n", "5m"),
    "CriticalStreamingDuration": ("critical", "> 2.5\n", "2m"),
    "HighFrontendProcessing": ("warning", "> 0.01\n", "5m"),
    "BackendResponseDominating": ("info", "> 70\n", "10m"),
    "StreamingTimeHigh": ("warning", "> 50\n", "10m"),
    "SlowProviderTTFB": ("warning", "> 2.5\n", "5m"),
    "SlowModelTTFB": ("warning", "> 3\n", "5m"),
    "BackendTTFBDegrading": ("warning", "> 1.5 * ", "10m"),
    "StreamingDurationDegrading": ("warning", "> 1.5 * ", "10m"),
}


def rules(name="prometheus-alerts.yml"):
    document = yaml.safe_load((ALERTS / name).read_text())
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def test_every_seed_alert_is_there_with_its_severity_threshold_and_duration():
    found = rules()
    assert set(found) == set(SEED_ALERTS)
    for name, (severity, threshold, duration) in SEED_ALERTS.items():
        rule = found[name]
        assert rule["labels"]["severity"] == severity, name
        assert threshold in rule["expr"], name
        assert rule["for"] == duration, name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        assert "#" in rule["annotations"]["runbook_url"], name


def test_percentiles_come_from_rates_of_buckets_and_trends_from_an_hour_ago():
    for name, rule in rules().items():
        if "histogram_quantile" in rule["expr"]:
            assert "rate(" in rule["expr"] and "_bucket[5m]" in rule["expr"], name
    for name in ["BackendTTFBDegrading", "StreamingDurationDegrading"]:
        assert "offset 1h" in rules()[name]["expr"]


def test_promtool_checks_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS / "prometheus-alerts.yml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_promtool_unit_tests_cover_every_alert_firing_and_quiet():
    tests = yaml.safe_load((ALERTS / "prometheus-alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for name in SEED_ALERTS:
        assert any(c["alertname"] == name and c["exp_alerts"] and c["exp_alerts"][0].get("exp_annotations") for c in cases), f"{name} never fires"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), f"{name} is never checked quiet"
    result = subprocess.run(["promtool", "test", "rules", "prometheus-alerts.test.yml"], cwd=ALERTS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runbook_links_land_on_readme_headings():
    readme = (ALERTS.parent / "README.md").read_text()
    # GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in readme.splitlines() if line.startswith("#")}
    for name, rule in rules().items():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{name} links to #{anchor}, which no README heading makes"


def test_the_native_rules_are_the_classic_ones_generated_and_promtool_accepts_them():
    subprocess.run([str(ALERTS.parent / "scripts" / "native-variants"), "--check"], check=True)
    classic, native = rules(), rules("prometheus-alerts-native.yml")
    assert set(classic) == set(native)
    for name, rule in native.items():
        assert "_bucket" not in rule["expr"] and "(le" not in rule["expr"], name
        assert {k: v for k, v in rule.items() if k != "expr"} == {k: v for k, v in classic[name].items() if k != "expr"}, name
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS / "prometheus-alerts-native.yml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS: 11 rules found" in result.stdout, result.stdout + result.stderr
