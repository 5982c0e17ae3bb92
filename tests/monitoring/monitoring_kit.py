"""What the monitoring tests share: where the component's files are, the metric names a real
scrape of the operator's registry exposes, and the metric names a PromQL expression reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from extraction_operator.metrics import RUN_PHASES, Metrics

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
MONITORING = MANIFESTS / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD_JSON = MONITORING / "extraction-operator-dashboard.json"
RULES_TEST = Path(__file__).resolve().parent / "rules_test.yaml"

# Series Prometheus itself makes for every target, which rules may use besides the operator's.
PROMETHEUS_SERIES = {"up"}


# ----------------------------------------------------------------------------- the real scrape


def exercised_metrics() -> Metrics:
    """The operator's registry with every metric holding a sample: each labelled metric gets one
    child (a labelled metric has no series before its first `labels()` call), and the run-phase
    collector sees runs."""
    metrics = Metrics()
    metrics.watch_run_phases(lambda: list(RUN_PHASES))
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labelnames = metric._labelnames
        child = metric.labels(*(f"x{i}" for i in range(len(labelnames)))) if labelnames else metric
        kind = metric._type
        if kind == "counter":
            child.inc()
        elif kind == "gauge":
            child.set(1)
        elif kind == "histogram":
            child.observe(1)
        else:  # pragma: no cover - a new kind of metric needs a line here
            raise AssertionError(f"exercise {metric} ({kind}) in exercised_metrics()")
    return metrics


def scrape() -> str:
    """The text a scrape of the operator's metrics port returns."""
    return generate_latest(exercised_metrics().registry).decode()


def exported_names() -> set[str]:
    """Every series name a scrape exposes: `extraction_retries_total`, `..._created`,
    `extraction_stage_duration_seconds_bucket`, `extraction_runs`, ..."""
    return {
        sample.name
        for family in text_string_to_metric_families(scrape())
        for sample in family.samples
    }


def exported_families() -> dict[str, set[str]]:
    """Metric (prometheus-client's name, without `_total`) -> the series names it exposes:
    `extraction_retries` -> {`extraction_retries_total`, `extraction_retries_created`}."""
    families = {
        family.name: {sample.name for sample in family.samples}
        for family in exercised_metrics().registry.collect()
    }
    assert set().union(*families.values()) == exported_names()
    return families


# ---------------------------------------------------------------------------------- PromQL names

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
# An identifier that does not continue a number (`30m`, `1e3`, `0x1f`) or another name.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
GRAFANA_VALUES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "namespace": ".*"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    aggregations, keywords, label names (in `{...}`, `by (...)`, `on (...)`, ...), durations or
    numbers. Selecting by `{__name__=...}` is refused rather than guessed at."""
    assert "__name__" not in expr, f"select metrics by name, not by __name__: {expr}"
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def substitute_grafana_variables(expr: str) -> str:
    """A dashboard query as Prometheus receives it (Grafana fills in `$__rate_interval`,
    `$namespace`, ...)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in GRAFANA_VALUES, f"unknown Grafana variable ${name} in {expr}"
        return GRAFANA_VALUES[name]

    return _GRAFANA_VARIABLE.sub(value, expr)


# ---------------------------------------------------------------------------------------- rules


def prometheus_rule() -> dict[str, Any]:
    document = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert isinstance(document, dict)
    return document


def rules_file() -> str:
    """The PrometheusRule's groups as the plain rules file Prometheus and promtool read."""
    return yaml.safe_dump({"groups": prometheus_rule()["spec"]["groups"]}, sort_keys=False)


def alerts() -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule()["spec"]["groups"] for rule in group["rules"]]
