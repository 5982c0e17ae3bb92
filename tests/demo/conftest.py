"""Run objects in the shapes the operator writes, for the demo's view, summary and flow tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

STAGES = ["chunk", "mentions", "entities"]


def _make_run(
    phase: str = "Running",
    nodes: dict[str, dict[str, Any]] | None = None,
    *,
    name: str = "pipeline",
    progress: str = "",
    message: str = "",
    uid: str = "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": uid,
            "annotations": {"extraction.dev/circuit-breakers": '{"v":1,"circuits":{}}'},
        },
        "spec": {
            "stages": [
                {"name": "chunk"},
                {"name": "mentions", "dependsOn": ["chunk"], "shards": 2},
                {"name": "entities", "dependsOn": ["mentions"]},
            ],
            "workspace": {"persistentVolumeClaim": {"claimName": "corpus-data"}},
        },
        "status": {
            "phase": phase,
            "progress": progress,
            "message": message,
            "startedAt": "2026-11-23T03:00:00Z",
            "conditions": conditions or [],
            "nodes": nodes or {},
        },
    }


def _node(
    phase: str,
    attempts: int = 1,
    *,
    started: str | None = "2026-11-23T03:00:01Z",
    finished: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    result: dict[str, Any] = {"phase": phase, "attempts": attempts, **extra}
    if started:
        result["startedAt"] = started
    if finished:
        result["finishedAt"] = finished
    return result


Factory = Callable[..., dict[str, Any]]


@pytest.fixture
def make_run() -> Factory:
    """`make_run(phase, nodes, name=..., progress=..., message=..., conditions=...)`."""
    return _make_run


@pytest.fixture
def node() -> Factory:
    """`node(phase, attempts, started=..., finished=..., **status_fields)`."""
    return _node


@pytest.fixture
def running_run() -> dict[str, Any]:
    """Mid-run: chunk done, one shard running, one shard waiting for a retry."""
    return _make_run(
        "Running",
        {
            "chunk": _node("Succeeded", finished="2026-11-23T03:00:03Z", message="15 chunks"),
            "mentions[1]": _node(
                "Waiting",
                1,
                finished="2026-11-23T03:00:05Z",
                nextRetryAt="2026-11-23T03:00:12Z",
                reason="Error",
                exitCode=1,
                message="deliberate failure of attempt 1",
            ),
            "mentions[0]": _node("Running", 1, started="2026-11-23T03:00:04Z"),
        },
        progress="1/4",
        message="2 stage Jobs running",
    )
