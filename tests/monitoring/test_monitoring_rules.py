"""The PrometheusRule of manifests/monitoring: the real `promtool check rules` accepts its groups,
`promtool test rules` passes tests/monitoring/rules_test.yaml, which has every alert both firing
and not firing, and every metric an alert reads is one the operator exports."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_kit import (
    PROMETHEUS_SERIES,
    REPO,
    RULES_TEST,
    alerts,
    exported_names,
    metric_names,
    prometheus_rule,
    rules_file,
)

SEVERITIES = {"critical", "warning", "info"}


def _promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _test_directory(tmp_path: Path, rules: str) -> Path:
    """rules.yaml (the PrometheusRule's groups) beside a copy of rules_test.yaml, which names it."""
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / RULES_TEST.name).write_text(RULES_TEST.read_text())
    return tmp_path


def _unit_tests() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_TEST.read_text())
    assert document["rule_files"] == ["rules.yaml"]
    tests: list[dict[str, Any]] = document["tests"]
    return tests


# --------------------------------------------------------------------------------------- promtool


def test_promtool_check_rules_accepts_the_groups(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rules_file())
    result = _promtool(
        promtool, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_check_rules_is_not_vacuous(promtool: Path, tmp_path: Path) -> None:
    groups = yaml.safe_load(rules_file())
    groups["groups"][0]["rules"][0]["expr"] = "sum by (namespace (up)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    result = _promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: Path, tmp_path: Path) -> None:
    directory = _test_directory(tmp_path, rules_file())
    result = _promtool(promtool, "test", "rules", RULES_TEST.name, cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_changed_threshold(promtool: Path, tmp_path: Path) -> None:
    """The unit tests have teeth: an alert that no longer fires when it should fails them."""
    rules = rules_file().replace(
        "max by (namespace) (extraction_runs_with_open_circuit) > 0",
        "max by (namespace) (extraction_runs_with_open_circuit) > 100",
    )
    assert rules != rules_file()
    directory = _test_directory(tmp_path, rules)
    result = _promtool(promtool, "test", "rules", RULES_TEST.name, cwd=directory)
    assert result.returncode != 0
    assert "alertname: ExtractionCircuitOpen" in result.stdout + result.stderr


# ------------------------------------------------------------------------------ what is covered


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested not firing"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_the_alerts_cover_what_the_operator_promises() -> None:
    """docs/monitoring.md describes these; quota saturation waits for a quota metric."""
    assert {rule["alert"] for rule in alerts()} == {
        "ExtractionOperatorDown",
        "ExtractionReconcileErrors",
        "ExtractionReconcileSlow",
        "ExtractionCircuitOpen",
        "ExtractionRunsFailing",
        "ExtractionStageAttemptsFailing",
        "ExtractionStagesCannotStart",
        "ExtractionRunsStalled",
    }


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_reads_only_exported_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names, f"{rule['alert']} reads no metric"
    unknown = names - exported_names() - PROMETHEUS_SERIES
    assert unknown == set(), f"{rule['alert']} reads metrics the operator does not export"


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_summary_and_description(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) >= {"summary", "description"}
    assert rule["alert"].startswith("Extraction")


def test_the_rule_is_a_prometheus_operator_object_beside_the_operator() -> None:
    document = prometheus_rule()
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["metadata"]["namespace"] == "extraction-system"
    assert set(document["spec"]) == {"groups"}


def test_every_alert_is_documented() -> None:
    docs = (REPO / "docs" / "monitoring.md").read_text()
    for rule in alerts():
        assert f"\n### {rule['alert']}\n" in docs, f"docs/monitoring.md has no {rule['alert']}"
        assert f"| `{rule['alert']}` | {rule['labels']['severity']} |" in docs
