"""The operator's Grafana dashboard, built with grafana-foundation-sdk.

The committed JSON (manifests/monitoring/extraction-operator-dashboard.json, shipped as a
ConfigMap for Grafana's dashboard sidecar by the monitoring component) is this module's output;
tests/monitoring checks that it is current and that every query names a metric the operator
exports. Regenerate it with

    .venv/bin/python -m extraction_operator.observability.dashboard \\
        manifests/monitoring/extraction-operator-dashboard.json

grafana-foundation-sdk is a development dependency (the `test` extra): nothing the operator runs
imports this module.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

# The classic dashboard model (Grafana's JSON, schemaVersion 4x), not the SDK's `dashboardv2`: the
# classic JSON is what Grafana's dashboard sidecar and file provisioning load on every Grafana
# from 10 to 12, while v2 is the schema of Grafana 12's new dashboard API only. The SDK marks every
# classic class deprecated with a warning at import; that choice is deliberate, so it is silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
    from grafana_foundation_sdk.builders.common import (
        ReduceDataOptions,
        StackingConfig,
        VizLegendOptions,
    )
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.common import (
        BigValueGraphMode,
        DataSourceRef,
        GraphDrawStyle,
        LegendDisplayMode,
        LegendPlacement,
        StackingMode,
    )
    from grafana_foundation_sdk.models.dashboard import (
        DashboardCursorSync,
        Threshold,
        ThresholdsMode,
        VariableRefresh,
        VariableSort,
    )

UID = "extraction-operator"
TITLE = "Extraction operator"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The operator pod's namespace, which the PodMonitor adds to every series: one dashboard for
# several installs. `.*` also matches series without the label (a scrape config that omits it).
NAMESPACE = 'namespace=~"$namespace"'
STAT_HEIGHT = 4
GRAPH_HEIGHT = 8


def series(metric: str, *matchers: str) -> str:
    """`metric{namespace=~"$namespace", <matchers>}`."""
    return f"{metric}{{{', '.join((NAMESPACE, *matchers))}}}"


def query(expr: str, legend: str = "__auto", ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend).ref_id(ref)
    )


def _thresholds(red_from: float | None) -> dashboard.ThresholdsConfig:
    steps = [Threshold(value=None, color="green")]
    if red_from is not None:
        steps.append(Threshold(value=red_from, color="red"))
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def stat_panel(
    title: str, description: str, expr: str, *, red_from: float | None = None
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr).instant())
        .unit("short")
        .decimals(0)
        .thresholds(_thresholds(red_from))
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(BigValueGraphMode.NONE)
        .height(STAT_HEIGHT)
        .span(4)
    )


def graph_panel(
    title: str,
    description: str,
    targets: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    bars: bool = False,
    stacked: bool = False,
    width: int = 12,
) -> timeseries.Panel:
    """A time series panel of `(expr, legend)` targets."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .height(GRAPH_HEIGHT)
        .span(width)
    )
    for index, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, ref=chr(ord("A") + index)))
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(80)
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    return panel


def _quantiles(metric: str, quantiles: Sequence[float]) -> list[tuple[str, str]]:
    """`(expr, legend)` of each quantile of a histogram's `_bucket` series."""
    return [
        (
            f"histogram_quantile({q}, sum by (le) (rate({series(metric)}[$__rate_interval])))",
            f"p{round(q * 100)}",
        )
        for q in quantiles
    ]


def overview() -> list[stat.Panel]:
    return [
        stat_panel(
            "Runs running",
            "ExtractionRuns in phase Running (extraction_runs).",
            "max(" + series("extraction_runs", 'phase="Running"') + ")",
        ),
        stat_panel(
            "Runs pending",
            "ExtractionRuns in phase Pending: nothing launched yet.",
            "max(" + series("extraction_runs", 'phase="Pending"') + ")",
        ),
        stat_panel(
            "Runs failed",
            "ExtractionRuns in phase Failed that still exist (deleting a run removes it).",
            "max(" + series("extraction_runs", 'phase="Failed"') + ")",
            red_from=1,
        ),
        stat_panel(
            "Runs with an open circuit",
            "Runs whose breaker annotation shows an open or half-open circuit.",
            f"max({series('extraction_runs_with_open_circuit')})",
            red_from=1,
        ),
        stat_panel(
            "Failed stage attempts",
            "Stage attempts that finished without success in the dashboard's time range.",
            "sum(increase("
            + series("extraction_stage_attempts_total", 'outcome!="succeeded"')
            + "[$__range])) or vector(0)",
            red_from=1,
        ),
        stat_panel(
            "Reconcile errors",
            "Reconciles that failed in the dashboard's time range.",
            f"sum(increase({series('extraction_reconcile_errors_total')}[$__range])) or vector(0)",
            red_from=1,
        ),
    ]


def runs() -> list[timeseries.Panel]:
    return [
        graph_panel(
            "Runs by phase",
            "ExtractionRuns known to the operator, by status.phase. `max` over replicas: an HA "
            "standby reports zeros.",
            [(f"max by (phase) ({series('extraction_runs')})", "{{phase}}")],
        ),
        graph_panel(
            "Spec handler invocations",
            "Calls of the run's create/update/resume handlers, per minute, by cause.",
            [
                (
                    "sum by (cause) (rate("
                    f"{series('extraction_spec_handler_invocations_total')}[$__rate_interval]"
                    ")) * 60",
                    "{{cause}}",
                )
            ],
            unit="opm",
        ),
    ]


def stages() -> list[timeseries.Panel]:
    return [
        graph_panel(
            "Finished stage attempts by outcome",
            "Stage attempts that ended, per minute, by outcome (succeeded, error, "
            "deadline_exceeded, pod_lost, circuit_open, start_deadline_exceeded, ...).",
            [
                (
                    "sum by (outcome) (rate("
                    f"{series('extraction_stage_attempts_total')}[$__rate_interval])) * 60",
                    "{{outcome}}",
                )
            ],
            unit="opm",
            stacked=True,
        ),
        graph_panel(
            "Stage attempt duration",
            "Wall time of finished stage attempts, from their start to their end.",
            _quantiles("extraction_stage_duration_seconds_bucket", (0.5, 0.95)),
            unit="s",
        ),
        graph_panel(
            "Stage Jobs and retries",
            "Stage Jobs created, Jobs found existing and adopted (after a restart), and retries "
            "scheduled, per minute.",
            [
                (
                    f"sum(rate({series('extraction_job_launches_total')}[$__rate_interval])) * 60",
                    "launched",
                ),
                (
                    f"sum(rate({series('extraction_job_adoptions_total')}[$__rate_interval])) * 60",
                    "adopted",
                ),
                (
                    f"sum(rate({series('extraction_retries_total')}[$__rate_interval])) * 60",
                    "retries",
                ),
            ],
            unit="opm",
        ),
        graph_panel(
            "Stage start problems by reason",
            "Causes that kept a stage attempt's pod from starting, each counted once per "
            "attempt (Unschedulable, ErrImagePull, CreateContainerConfigError, FailedCreate, "
            "...).",
            [
                (
                    "sum by (reason) (increase("
                    f"{series('extraction_stage_start_problems_total')}[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            bars=True,
        ),
    ]


def circuits() -> list[timeseries.Panel]:
    return [
        graph_panel(
            "Runs with an open circuit",
            "Runs whose breaker annotation shows an open or half-open circuit.",
            [(f"max({series('extraction_runs_with_open_circuit')})", "runs")],
        ),
        graph_panel(
            "Circuit transitions",
            "Circuit breaker transitions seen by the operator, by circuit and new state.",
            [
                (
                    "sum by (circuit, state) (increase("
                    f"{series('extraction_circuit_transitions_total')}[$__rate_interval]))",
                    "{{circuit}} {{state}}",
                )
            ],
            bars=True,
        ),
    ]


def reconciler() -> list[timeseries.Panel]:
    return [
        graph_panel(
            "Reconciles and errors",
            "Reconciles per second, and failed reconciles by kind (the exception's class).",
            [
                (
                    "sum(rate("
                    f"{series('extraction_reconcile_duration_seconds_count')}[$__rate_interval]))",
                    "reconciles",
                ),
                (
                    "sum by (kind) (rate("
                    f"{series('extraction_reconcile_errors_total')}[$__rate_interval]))",
                    "errors: {{kind}}",
                ),
            ],
            unit="ops",
            width=8,
        ),
        graph_panel(
            "Reconcile duration",
            "Time to reconcile one run: plan and writes.",
            _quantiles("extraction_reconcile_duration_seconds_bucket", (0.5, 0.99)),
            unit="s",
            width=8,
        ),
        graph_panel(
            "Status conflicts and re-drives",
            "Status writes that lost a compare-and-swap race (and were re-planned), and "
            "re-drives by trigger (takeover by another replica, the redrive annotation).",
            [
                (
                    "sum(increase("
                    f"{series('extraction_status_conflicts_total')}[$__rate_interval]))",
                    "status conflicts",
                ),
                (
                    "sum by (trigger) (increase("
                    f"{series('extraction_redrives_total')}[$__rate_interval]))",
                    "re-drive: {{trigger}}",
                ),
            ],
            bars=True,
            width=8,
        ),
    ]


def variables() -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    return [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dashboard.QueryVariable("namespace")
        .label("Operator namespace")
        .description("Namespace of the operator pods (added by the PodMonitor).")
        .datasource(DATASOURCE)
        .query("label_values(extraction_runs, namespace)")
        .definition("label_values(extraction_runs, namespace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]


def build_dashboard() -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description(
            "ExtractionRuns, stage attempts, circuit breakers and the reconciler of "
            "extraction-operator. Alerts: manifests/monitoring/prometheusrule.yaml."
        )
        .tags(["extraction-operator", "kubernetes"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )
    for variable in variables():
        board = board.with_variable(variable)
    sections: list[tuple[str, Sequence[stat.Panel | timeseries.Panel]]] = [
        ("Overview", overview()),
        ("Runs", runs()),
        ("Stages", stages()),
        ("Circuit breakers", circuits()),
        ("Reconciler", reconciler()),
    ]
    ids = itertools.count(1)
    for title, panels in sections:
        board = board.with_row(dashboard.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    return board


def render_dashboard_json() -> str:
    """The dashboard as Grafana's JSON model, keys sorted, with a final newline."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return encoder.encode(build_dashboard().build()) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m extraction_operator.observability.dashboard",
        description="Write the operator's Grafana dashboard (JSON).",
    )
    parser.add_argument("output", nargs="?", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    rendered = render_dashboard_json()
    if args.output is None:
        sys.stdout.write(rendered)
    else:
        args.output.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
