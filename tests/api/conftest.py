"""Specs shared by the API tests: the DESIGN.md example and the smallest valid run."""

from __future__ import annotations

import copy
from typing import Any

import pytest

# DESIGN.md section 1, completed into a six-stage DAG with a fan-out stage.
DESIGN_EXAMPLE_SPEC: dict[str, Any] = {
    "image": "ghcr.io/acme/extractor:1.4",
    "serviceAccountName": "extraction-stage",
    "suspend": False,
    "activeDeadlineSeconds": 7200,
    "parallelism": 4,
    "failFast": True,
    "env": [{"name": "MODEL", "value": "small"}],
    "envFrom": [{"secretRef": {"name": "llm-credentials"}}],
    "workspace": {"persistentVolumeClaim": {"claimName": "corpus-data"}, "mountPath": "/workspace"},
    "retry": {
        "limit": 3,
        "backoff": {"initialSeconds": 10, "factor": 2, "maxSeconds": 300, "jitter": "full"},
        "nonRetryableExitCodes": [2],
    },
    "circuitBreakers": {
        "llm": {
            "failureThreshold": 5,
            "recoveryTimeoutSeconds": 30,
            "successThreshold": 2,
            "probeTimeoutSeconds": 120,
        }
    },
    "stages": [
        {
            "name": "chunk",
            "command": ["python", "-m", "extractor.chunk"],
            "args": [],
            "dependsOn": [],
            "timeoutSeconds": 600,
            "shards": 1,
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "env": [],
        },
        {
            "name": "mentions",
            "command": ["python", "-m", "extractor.mentions"],
            "dependsOn": ["chunk"],
            "circuits": ["llm"],
            "shards": 4,
            "retry": {"limit": 5, "backoff": {"maxSeconds": 60}},
        },
        {"name": "entities", "dependsOn": ["mentions"], "circuits": ["llm"]},
        {"name": "relations", "dependsOn": ["mentions", "entities"], "circuits": ["llm"]},
        {"name": "assemble", "dependsOn": ["entities", "relations"], "image": "busybox:1.36"},
        {"name": "resolve", "dependsOn": ["assemble"], "resources": {"limits": {"cpu": 2}}},
    ],
}

MINIMAL_SPEC: dict[str, Any] = {"image": "busybox:1.36", "stages": [{"name": "only"}]}


@pytest.fixture
def design_spec() -> dict[str, Any]:
    """A fresh deep copy, so a test can mutate it freely."""
    return copy.deepcopy(DESIGN_EXAMPLE_SPEC)


@pytest.fixture
def minimal_spec() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL_SPEC)


@pytest.fixture(scope="session")
def design_spec_template() -> dict[str, Any]:
    """The shared DESIGN.md example for hypothesis tests (which reject function-scoped fixtures).
    Never mutate it: deep-copy first."""
    return DESIGN_EXAMPLE_SPEC
