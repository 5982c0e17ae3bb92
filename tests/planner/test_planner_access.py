"""The `CircuitBreakersShared` condition: the stage ServiceAccount's verdict, on the run."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from planner_kit import NOW, condition, snapshot, spec, stage

from extraction_operator.planner import BreakerAccess, Plan, plan_run

CIRCUITS = {"llm": {"failureThreshold": 2}}
DENIED = BreakerAccess(False, "stage pods run as ServiceAccount ns/default, which may not get")
ALLOWED = BreakerAccess(True, "stage pods run as ServiceAccount ns/extraction-stage, which may")


def _run_spec(circuits: bool = True) -> dict[str, Any]:
    guarded = stage("a", circuits=["llm"]) if circuits else stage("a")
    return spec(guarded, circuitBreakers=CIRCUITS)


def _plan(status: dict[str, Any], verdict: BreakerAccess | None, **fields: Any) -> Plan:
    base = snapshot(fields.pop("run_spec", _run_spec()), status, **fields)
    return plan_run(replace(base, breaker_access=verdict))


def _events(plan: Plan, reason: str) -> list[str]:
    return [event.message for event in plan.events if event.reason == reason]


def test_a_refused_stage_account_is_a_false_condition_and_one_warning_event() -> None:
    first = _plan({}, DENIED)
    shared = condition(first.status, "CircuitBreakersShared")
    assert (shared["status"], shared["reason"]) == ("False", "Forbidden")
    assert shared["message"] == DENIED.message
    assert _events(first, "CircuitBreakersNotShared") == [DENIED.message]
    # The same verdict again, and an unknown one, change nothing and repeat no Event.
    for verdict in (DENIED, None):
        again = _plan(first.status, verdict, now=NOW + timedelta(seconds=30))
        assert condition(again.status, "CircuitBreakersShared") == shared
        assert _events(again, "CircuitBreakersNotShared") == []


def test_a_fixed_account_turns_the_condition_true_with_a_normal_event() -> None:
    refused = _plan({}, DENIED)
    fixed = _plan(refused.status, ALLOWED, now=NOW + timedelta(seconds=60))
    shared = condition(fixed.status, "CircuitBreakersShared")
    assert (shared["status"], shared["reason"]) == ("True", "Allowed")
    assert _events(fixed, "CircuitBreakersShared") == [ALLOWED.message]
    # Allowed from the start is not news.
    assert _events(_plan({}, ALLOWED), "CircuitBreakersShared") == []


def test_runs_without_circuits_carry_no_such_condition() -> None:
    plan = _plan({}, None, run_spec=_run_spec(circuits=False))
    types = {item["type"] for item in plan.status["conditions"]}
    assert types == {"Ready", "Reconciling", "Stalled"}
    assert _plan({}, None).status["conditions"] == plan.status["conditions"]
