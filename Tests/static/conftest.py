"""Checks of the files perfgate ships beside its binary (alert rules, dashboard, docker stack),
with the outside tools that read them (promtool, amtool); no perfgate process runs here."""

import sys
from pathlib import Path

# The PromQL helpers are shared with the live tests, which run the same queries against Prometheus.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))
