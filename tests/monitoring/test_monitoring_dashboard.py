"""The Grafana dashboard of manifests/monitoring: the committed JSON is what
`extraction_operator.observability.dashboard` builds (grafana-foundation-sdk, never hand-written),
every panel's query names only metrics a real scrape of the operator exposes, the queries parse
with the real promtool, and every exported metric is on the dashboard."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_kit import (
    DASHBOARD_JSON,
    exported_families,
    exported_names,
    metric_names,
    substitute_grafana_variables,
)

from extraction_operator.observability.dashboard import UID, main, render_dashboard_json

JSON = dict[str, Any]


def _dashboard() -> JSON:
    document = json.loads(DASHBOARD_JSON.read_text())
    assert isinstance(document, dict)
    return document


def _panels(panels: list[JSON]) -> Iterator[JSON]:
    """Every panel, rows' collapsed panels included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    dashboard = _dashboard()
    found = [
        (f"panel {panel['id']} {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = str(variable["query"]).removeprefix("label_values(").partition(",")
            assert match[1], f"variable {variable['name']}: expected label_values(metric, label)"
            found.append((f"variable {variable['name']}", match[0]))
    return found


QUERIES = _queries()


# ------------------------------------------------------------------------------- committed copy


def test_committed_dashboard_is_generated() -> None:
    assert DASHBOARD_JSON.read_text() == render_dashboard_json(), (
        f"{DASHBOARD_JSON.relative_to(DASHBOARD_JSON.parents[2])} is out of date: run "
        "`.venv/bin/python -m extraction_operator.observability.dashboard "
        "manifests/monitoring/extraction-operator-dashboard.json` and commit it"
    )


@pytest.mark.filterwarnings("ignore:Prefer using dashboardv2:DeprecationWarning")
def test_committed_dashboard_round_trips_through_the_sdk_model() -> None:
    """The JSON decodes into grafana-foundation-sdk's dashboard model, panels and Prometheus
    queries included, and encodes back unchanged: no field the model does not know."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    model = Dashboard.from_json(_dashboard())
    assert type(model.panels[1]).__name__ == "Panel"
    assert json.loads(JSONEncoder().encode(model)) == _dashboard()


def test_main_writes_the_dashboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "dashboard.json")]) == 0
    assert (tmp_path / "dashboard.json").read_text() == DASHBOARD_JSON.read_text()
    assert main([]) == 0
    assert capsys.readouterr().out == DASHBOARD_JSON.read_text()


# ------------------------------------------------------------------------------------ queries


def test_there_are_queries_to_check() -> None:
    panels = [p for p in _panels(_dashboard()["panels"]) if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
    assert any(where.startswith("variable") for where, _ in QUERIES)


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[where for where, _ in QUERIES])
def test_query_names_only_metrics_the_operator_exports(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where} names no metric: {expr}"
    unknown = names - exported_names()
    assert unknown == set(), f"{where} reads metrics the operator does not export: {expr}"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    read = {name for _, expr in QUERIES for name in metric_names(expr)}
    missing = {family for family, names in exported_families().items() if not names & read}
    assert missing == set(), "exported metrics without a panel"


def test_queries_parse_with_promtool(promtool: Path, tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, is a recording rule that the real
    Prometheus parser accepts."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substitute_grafana_variables(expr)}
        for index, (_, expr) in enumerate(QUERIES)
    ]
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = subprocess.run(
        [str(promtool), "check", "rules", "queries.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------- name extraction


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("extraction_runs", {"extraction_runs"}),
        (
            'sum by (namespace, kind) (rate(extraction_reconcile_errors_total{kind!="x"}[5m])) > 0',
            {"extraction_reconcile_errors_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(a_bucket[10m]))) > 2.5e3",
            {"a_bucket"},
        ),
        ('absent(up{job="extraction-operator"} == 1)', {"up"}),
        (
            "max(a) - max(max_over_time(b[5m] offset 30m)) or on (namespace) vector(0)",
            {"a", "b"},
        ),
        ("x unless ignoring (pod) y * on (le) group_left (phase) z > bool 0x1f", {"x", "y", "z"}),
        ('label_replace(m, "dst", "$1 {not} [a] x", "src", "(.*)")', {"m"}),
        ("sum without (pod) (rate(n:recorded:rate5m[5m:1m])) AND Inf", {"n:recorded:rate5m"}),
        ('rate(c{namespace=~"$namespace"}[$__rate_interval])', {"c"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_refuses_name_matchers() -> None:
    with pytest.raises(AssertionError):
        metric_names('{__name__="extraction_runs"}')


# --------------------------------------------------------------------------------------- shape


def test_dashboard_identity_and_variables() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == UID
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["includeAll"] is True


def test_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    panels = list(_panels(_dashboard()["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert '$namespace"' in target["expr"], f"{panel['title']!r} ignores $namespace"
