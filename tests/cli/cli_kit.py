"""Builders of ExtractionRun objects as the operator writes them, shared by the CLI tests."""

from __future__ import annotations

import copy
from typing import Any

STAGES: list[dict[str, Any]] = [
    {"name": "split"},
    {"name": "extract", "dependsOn": ["split"], "shards": 3, "circuits": ["llm"]},
    {"name": "summary", "dependsOn": ["split"]},
    {"name": "merge", "dependsOn": ["extract", "summary"]},
]


def make_run(
    phase: str = "Running",
    nodes: dict[str, dict[str, Any]] | None = None,
    *,
    name: str = "corpus",
    stages: list[dict[str, Any]] | None = None,
    resource_version: str = "1",
    **status: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
            "resourceVersion": resource_version,
        },
        "spec": {
            "image": "example",
            "circuitBreakers": {"llm": {}},
            "stages": copy.deepcopy(STAGES if stages is None else stages),
        },
        "status": {
            "phase": phase,
            "startedAt": "2026-11-23T03:00:00Z",
            "nodes": nodes or {},
            **status,
        },
    }


def node(
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
