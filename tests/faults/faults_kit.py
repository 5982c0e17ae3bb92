"""Helpers shared by the fault tests: small runs of the stage tool, Events, the success audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chaos
from extraction_operator.api.constants import API_VERSION

REPO = Path(__file__).resolve().parents[2]
# The stage program of the integration tests: sleeps, fails chosen attempts, logs each start.
STAGE_TOOL = str(REPO / "tests" / "integration" / "stage_tool.py")
FAST_RETRY = {"limit": 3, "backoff": {"initialSeconds": 0.2, "factor": 2, "maxSeconds": 1}}


def stage(
    name: str, log: Path, *, depends_on: list[str] | None = None, **flags: Any
) -> dict[str, Any]:
    """A stage running the integration tests' stage tool; flags become `--flag value`."""
    extra: dict[str, Any] = {key: flags.pop(key) for key in ("shards", "retry") if key in flags}
    args = ["--log", str(log)]
    for flag, value in flags.items():
        args += [f"--{flag.replace('_', '-')}", str(value)]
    return {
        "name": name,
        "command": ["python", STAGE_TOOL],
        "args": args,
        "dependsOn": depends_on or [],
        **extra,
    }


def create_run(cluster: Any, name: str, *stages: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": "ExtractionRun",
        "metadata": {"name": name},
        "spec": {"image": "local", "retry": FAST_RETRY, "stages": list(stages)},
    }
    return dict(chaos.request(cluster.url, "POST", chaos.runs_path(), body))


def events(cluster: Any, run: str) -> list[dict[str, Any]]:
    items = chaos.request(cluster.url, "GET", f"/api/v1/namespaces/{chaos.NAMESPACE}/events")
    return [e for e in items.get("items", []) if e.get("involvedObject", {}).get("name") == run]


def assert_clean_success(cluster: Any, run: str, timeout: float = 60.0) -> chaos.RunAudit:
    """The run ends Succeeded with one Job per (node, attempt) and status counting them all."""
    phase = chaos.wait_phase(cluster.url, run, timeout)
    audit = chaos.audit_run(cluster.url, run)
    assert phase == "Succeeded", audit.describe()
    assert audit.ok, audit.describe()
    return audit
