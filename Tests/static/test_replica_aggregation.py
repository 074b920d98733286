"""Several replicas: every shipped query sums histograms over `instance`, and the replicas'
compose stack is complete. With N replicas each histogram series exists N times (one per
`instance`); a query that kept `instance` would show per-replica quantiles rather than the
service's."""

import json
import re
import subprocess
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
HISTOGRAMS = ("backend_ttfb_seconds", "streaming_duration_seconds", "frontend_processing_seconds", "request_stage_duration_seconds")


def shipped_queries():
    for path in sorted((ROOT / "alerts").glob("prometheus-alerts*.yml")):
        if path.name.endswith(".test.yml"):
            continue
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel.get('title')}", target["expr"]


def enclosing_aggregations(expr, position):
    """The aggregations (operator, `by`/`without`, labels) whose parentheses enclose `position`."""
    found = []
    for match in re.finditer(r"\b(sum|avg|max|min|count|topk)\s*(by|without)?\s*(\(([^()]*)\))?\s*\(", expr):
        depth, end = 0, None
        for index in range(match.end() - 1, len(expr)):
            depth += {"(": 1, ")": -1}.get(expr[index], 0)
            if depth == 0:
                end = index
                break
        if match.end() <= position < (end or len(expr)):
            labels = [l.strip() for l in (match.group(4) or "").split(",") if l.strip()] if match.group(2) else []
            found.append((match.group(1), match.group(2), labels))
    return found


def test_every_histogram_in_the_shipped_rules_and_dashboards_is_summed_over_instance():
    checked = 0
    for where, expr in shipped_queries():
        for metric in HISTOGRAMS:
            for use in re.finditer(rf"\b{metric}(_bucket|_count|_sum)?\b", expr):
                sums = [a for a in enclosing_aggregations(expr, use.start()) if a[0] == "sum"]
                assert sums, f"{where}: {metric} is not summed over replicas in {expr!r}"
                innermost = sums[-1]
                assert not (innermost[1] == "by" and "instance" in innermost[2]), f"{where}: keeps instance"
                assert not (innermost[1] == "without" and "instance" not in innermost[2]), f"{where}: keeps instance"
                checked += 1
    assert checked > 40


def test_stage_percentage_is_read_as_the_one_value_every_replica_shows():
    # Every replica shows the same shares: averaging them (or alerting on each, grouped into one
    # notification by Alertmanager without `instance`) is right; summing them is not.
    for where, expr in shipped_queries():
        for use in re.finditer(r"\bstage_percentage\b", expr):
            assert "sum" not in [a[0] for a in enclosing_aggregations(expr, use.start())], where
    routes = yaml.safe_load((DOCKER / "alertmanager" / "alertmanager.yml").read_text())["route"]
    assert "instance" not in routes["group_by"]


COMPOSE = yaml.safe_load((DOCKER / "docker-compose.replicas.yml").read_text())


def test_the_replicas_stack_runs_two_replicas_on_postgres_behind_a_balancer():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "perfgate-1", "perfgate-2", "nginx", "prometheus", "alertmanager", "grafana"}
    instances = set()
    for name in ("perfgate-1", "perfgate-2"):
        environment = services[name]["environment"]
        url = environment["PERFGATE_DB"]
        assert url.startswith("postgres://") and "@postgres:5432/" in url
        assert ":" not in url.split("://", 1)[1].split("@", 1)[0], "the password goes in PGPASSWORD, not the URL"
        assert environment["PGPASSWORD"] == services["postgres"]["environment"]["POSTGRES_PASSWORD"]
        instances.add(environment["PERFGATE_INSTANCE"])
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert instances == {"perfgate-1", "perfgate-2"}
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), source
    upstream = (DOCKER / "nginx" / "replicas.conf").read_text()
    assert re.findall(r"server (perfgate-\d):9095", upstream) == ["perfgate-1", "perfgate-2"]
    assert "ip_hash" not in upstream and "sticky" not in upstream


def test_prometheus_scrapes_each_replica_and_passes_promtool(tmp_path):
    for volume in COMPOSE["services"]["prometheus"]["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            placed = tmp_path / target.lstrip("/")
            placed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy((DOCKER / source).resolve(), placed)
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "etc/prometheus/prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus-replicas.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "perfgate")
    assert job["static_configs"][0]["targets"] == ["perfgate-1:9095", "perfgate-2:9095"]
