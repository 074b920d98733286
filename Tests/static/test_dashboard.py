"""dashboards/performance-monitoring.json: importable, bound to one datasource, laid out on the
grid without overlaps, and every query valid PromQL."""

import json
from pathlib import Path

from promql import dashboard_targets, resolve, syntax_errors, variable_selector

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "dashboards" / "performance-monitoring.json").read_text())
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_it_is_importable_with_a_datasource_input():
    assert DASHBOARD["__inputs"] == [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "The Prometheus that scrapes perfgate",
                                      "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}]
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    # The import dialog's choice becomes the datasource variable, which every query uses.
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    assert "id" not in DASHBOARD, "an exported dashboard carries no database id"
    assert DASHBOARD["uid"] and DASHBOARD["title"]


def test_the_seed_panels_are_all_there():
    titles = [panel["title"] for panel in DASHBOARD["panels"]]
    for title in ["Backend API TTFB by Provider/Model", "Streaming Duration by Provider/Model", "Frontend Processing Time (p95)",
                  "Request Stage Breakdown (Stacked)", "Time Distribution by Stage (%)", "Top 10 Slowest Backend TTFB"]:
        assert title in titles
    assert sum(panel["type"] == "gauge" for panel in DASHBOARD["panels"]) >= 4
    by_title = {panel["title"]: panel for panel in DASHBOARD["panels"]}
    legends = [t["legendFormat"] for t in by_title["Backend API TTFB by Provider/Model"]["targets"]]
    assert [legend.split()[0] for legend in legends] == ["p50", "p95", "p99"]
    frontend_steps = by_title["Frontend Processing Time (p95)"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "yellow", "value": 0.003} in frontend_steps, "the 3 ms line"
    assert by_title["Request Stage Breakdown (Stacked)"]["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert "topk(10," in by_title["Top 10 Slowest Backend TTFB"]["targets"][0]["expr"]


def test_variables_select_many_and_all():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    for name in ["provider", "model", "endpoint"]:
        variable = variables[name]
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
        assert variable["datasource"] == DATASOURCE


def test_every_panel_and_target_uses_the_datasource_variable_and_has_units_and_a_description():
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in {"s", "percent", "reqps"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panel_ids_are_unique_and_the_grid_has_no_overlaps():
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    boxes = [(panel["title"], panel["gridPos"]) for panel in DASHBOARD["panels"]]
    for title, box in boxes:
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24 and box["h"] > 0, title
    for i, (first, a) in enumerate(boxes):
        for second, b in boxes[i + 1:]:
            apart = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
            assert apart, f"{first} overlaps {second}"


def test_every_query_parses_as_promql(tmp_path):
    expressions = [resolve(target["expr"]) for _, target in dashboard_targets(DASHBOARD)]
    expressions += [resolve(variable_selector(v["query"]["query"])) for v in DASHBOARD["templating"]["list"] if v["type"] == "query"]
    assert syntax_errors(expressions, tmp_path) == ""
    # The check can fail: a broken expression is reported.
    assert "parse error" in syntax_errors(["sum(rate(x[5m])"], tmp_path)
