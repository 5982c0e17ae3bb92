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


def test_start_problems_are_counted_once_per_cause_and_attempt_with_bounded_labels() -> None:
    metrics = Metrics()
    launched = {"a": {"phase": "Running", "attempts": 1}}
    stuck = {
        "a": {
            "phase": "Pending",
            "attempts": 1,
            "reason": "ErrImagePull",
            "startProblems": ["ErrImagePull"],
        }
    }
    metrics.record_node_transitions(launched, stuck)
    metrics.record_node_transitions(stuck, stuck)  # re-planned: nothing new
    backing_off = {
        "a": {
            **stuck["a"],
            "reason": "ImagePullBackOff",
            "startProblems": ["ErrImagePull", "ImagePullBackOff", "SomethingNew"],
        }
    }
    metrics.record_node_transitions(stuck, backing_off)  # one cause, two names; and a new one
    assert _value(metrics, "extraction_stage_start_problems_total", reason="ErrImagePull") == 1
    assert _value(metrics, "extraction_stage_start_problems_total", reason="ImagePullBackOff") == 0
    assert _value(metrics, "extraction_stage_start_problems_total", reason="Other") == 1
    # The next attempt meets the same cause: counted again.
    retried = {"a": {**stuck["a"], "attempts": 2}}
    metrics.record_node_transitions(backing_off, retried)
    assert _value(metrics, "extraction_stage_start_problems_total", reason="ErrImagePull") == 2


def test_an_attempt_that_never_started_is_a_finished_attempt_when_it_ends() -> None:
    """A stuck attempt is `Pending` on the wire but was in flight: its end is counted."""
    metrics = Metrics()
    stuck = {
        "a": {"phase": "Pending", "attempts": 1, "reason": "X", "startProblems": ["X"]},
    }
    ended = {"a": {"phase": "Waiting", "attempts": 1, "reason": "StartDeadlineExceeded"}}
    metrics.record_node_transitions(stuck, ended)
    outcome = "start_deadline_exceeded"
    assert _value(metrics, "extraction_stage_attempts_total", outcome=outcome) == 1
    assert _value(metrics, "extraction_retries_total") == 1
    failed = {"a": {"phase": "Failed", "attempts": 1, "reason": "StartError"}}
    metrics.record_node_transitions({"a": {"phase": "Running", "attempts": 1}}, failed)
    assert _value(metrics, "extraction_stage_attempts_total", outcome="start_error") == 1


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
