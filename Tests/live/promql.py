"""Dashboard queries as Prometheus sees them, and a PromQL syntax check by promtool."""

import re
import subprocess

import yaml

# What Grafana puts in place of its variables when every value is selected.
VARIABLES = {"$__rate_interval": "1m", "$provider": ".*", "$model": ".*", "$endpoint": ".*"}


def resolve(expr, variables=VARIABLES):
    for name, value in sorted(variables.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    leftover = re.findall(r"\$\w+", expr)
    assert not leftover, f"unknown dashboard variables {leftover} in {expr}"
    return expr


def dashboard_targets(dashboard):
    """(panel title, target) for every query of every panel."""
    return [(panel["title"], target) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def variable_selector(query):
    """The series selector of a `label_values(selector, label)` variable query."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert match, f"not a label_values query: {query}"
    return match.group(1)


def syntax_errors(expressions, folder):
    """promtool's complaints about each expression, read as a recording rule; empty when all parse."""
    rules = {"groups": [{"name": "syntax", "rules": [{"record": f"check:expr_{n}", "expr": e} for n, e in enumerate(expressions)]}]}
    path = folder / "expressions.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    return "" if result.returncode == 0 else result.stdout + result.stderr
