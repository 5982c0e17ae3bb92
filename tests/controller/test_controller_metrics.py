"""Metrics count finished attempts from node transitions, with bounded labels."""

from __future__ import annotations

from prometheus_client import generate_latest

from extraction_operator.metrics import Metrics


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_finished_attempts_are_counted_by_outcome() -> None:
    metrics = Metrics()
    old = {
        "a": {"phase": "Running", "attempts": 1, "startedAt": "2026-01-01T00:00:00Z"},
        "b": {"phase": "Running", "attempts": 2, "startedAt": "2026-01-01T00:00:00Z"},
        "c": {"phase": "Running", "attempts": 1},
        "d": {"phase": "Pending", "attempts": 0},
    }
    new = {
        "a": {
            "phase": "Succeeded",
            "attempts": 1,
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:30Z",
        },
        "b": {"phase": "Waiting", "attempts": 2, "reason": "Error"},
        "c": {"phase": "Blocked", "attempts": 1, "reason": "CircuitOpen"},
        "d": {"phase": "Running", "attempts": 1},  # a launch, not a finished attempt
    }
    metrics.record_node_transitions(old, new)
    assert _value(metrics, "extraction_stage_attempts_total", outcome="succeeded") == 1
    assert _value(metrics, "extraction_stage_attempts_total", outcome="error") == 1
    assert _value(metrics, "extraction_stage_attempts_total", outcome="circuit_open") == 1
    assert _value(metrics, "extraction_retries_total") == 1
    assert _value(metrics, "extraction_stage_duration_seconds_sum", outcome="succeeded") == 30


def test_replaying_the_same_transition_counts_nothing() -> None:
    metrics = Metrics()
    same = {"a": {"phase": "Succeeded", "attempts": 1}}
    metrics.record_node_transitions(same, same)
    assert _value(metrics, "extraction_stage_attempts_total", outcome="succeeded") == 0


def test_run_phase_gauge_is_computed_at_scrape_time() -> None:
    metrics = Metrics()
    phases = ["Running", "Running", "Failed"]
    metrics.watch_run_phases(lambda: phases)
    assert _value(metrics, "extraction_runs", phase="Running") == 2
    assert _value(metrics, "extraction_runs", phase="Succeeded") == 0
    phases.clear()
    assert _value(metrics, "extraction_runs", phase="Running") == 0
    text = generate_latest(metrics.registry).decode()
    assert "extraction_reconcile_duration_seconds" in text
