"""Which Job and pod events wake a run: only those that can change its plan."""

from __future__ import annotations

import pytest

from extraction_operator.controller.handlers import _job_event_matters, _pod_event_matters

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}]}
FAILED = {"conditions": [{"type": "Failed", "status": "True"}]}
FAILURE_TARGET_ONLY = {"conditions": [{"type": "FailureTarget", "status": "True"}], "active": 1}


@pytest.mark.parametrize(
    ("kind", "meta", "status", "matters"),
    [
        (None, {}, {}, True),  # the initial listing after a restart
        ("ADDED", {}, {}, True),
        ("DELETED", {}, {"active": 1}, True),
        ("MODIFIED", {"deletionTimestamp": "2026-01-01T00:00:00Z"}, {}, True),
        ("MODIFIED", {}, COMPLETE, True),
        ("MODIFIED", {}, FAILED, True),
        ("MODIFIED", {}, {"active": 1, "ready": 1}, False),
        ("MODIFIED", {}, FAILURE_TARGET_ONLY, False),
        ("MODIFIED", {}, {"conditions": "garbage"}, False),
    ],
)
def test_job_events(kind: str | None, meta: dict, status: dict, matters: bool) -> None:
    assert _job_event_matters(kind, meta, status) is matters


@pytest.mark.parametrize(
    ("kind", "meta", "status", "matters"),
    [
        ("MODIFIED", {}, {"phase": "Running"}, False),
        ("MODIFIED", {}, {"phase": "Pending"}, False),
        ("MODIFIED", {}, {"phase": "Failed", "reason": "Evicted"}, True),
        ("MODIFIED", {}, {"phase": "Succeeded"}, True),
        ("DELETED", {}, {"phase": "Running"}, True),
        ("MODIFIED", {"deletionTimestamp": "2026-01-01T00:00:00Z"}, {"phase": "Running"}, True),
    ],
)
def test_pod_events(kind: str, meta: dict, status: dict, matters: bool) -> None:
    assert _pod_event_matters(kind, meta, status) is matters
