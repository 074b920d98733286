"""docker/: what can be checked without a Docker engine. The compose file parses and every file
it mounts or builds from exists; Prometheus' config, laid out as the container sees it, passes
`promtool check config` (rules included); Alertmanager's passes `amtool check-config`; Grafana's
provisioning points at the mounted dashboards and at the Prometheus service."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def bind_mounts(service):
    """(host path, container path) of a service's bind mounts; named volumes are left out."""
    mounts = []
    for volume in COMPOSE["services"][service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((DOCKER / source).resolve(), target))
    return mounts


def test_the_stack_has_the_four_services_and_every_mounted_file_exists():
    assert set(COMPOSE["services"]) == {"perfgate", "prometheus", "alertmanager", "grafana"}
    for service in COMPOSE["services"]:
        for host, _ in bind_mounts(service):
            assert host.exists(), f"{service} mounts {host}, which is missing"
    build = COMPOSE["services"]["perfgate"]["build"]
    assert ((DOCKER / build["context"]).resolve() / build["dockerfile"]).is_file()
    named = {volume.split(":")[0] for service in COMPOSE["services"].values() for volume in service.get("volumes", [])
             if not volume.startswith((".", "/"))}
    assert named <= set(COMPOSE["volumes"])


def test_the_dockerfile_builds_from_files_that_exist_and_runs_as_a_non_root_user():
    text = (DOCKER / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (ROOT / source).exists(), f"COPY {source}: missing from the build context"
    # Every target of Package.swift lives in a folder the build copies.
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE))
    for path in re.findall(r'path: "([^"/]+)', (ROOT / "Package.swift").read_text()):
        assert path in copied, f"Package.swift needs {path}"
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'VOLUME ["/var/lib/perfgate"]' in text and "PERFGATE_DB=/var/lib/perfgate/" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".build*/" in ignored


def test_prometheus_config_as_mounted_passes_promtool(tmp_path):
    # Lay the files out as the container sees them, then check from there.
    for host, target in bind_mounts("prometheus"):
        placed = tmp_path / target.lstrip("/")
        placed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(host, placed)
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "etc/prometheus/prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert "perfgate:9095" in targets
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_alertmanager_config_passes_amtool():
    result = subprocess.run(["amtool", "check-config", str(DOCKER / "alertmanager" / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_datasource_and_the_mounted_dashboard():
    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090" and datasource["isDefault"]
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/perfgate.yml").read_text())["providers"][0]
    mounts = dict((target, host) for host, target in bind_mounts("grafana"))
    assert mounts[provider["options"]["path"]] == ROOT / "dashboards"
    assert (ROOT / "dashboards" / "performance-monitoring.json").is_file()
