"""The operator and the shared breaker annotation (issue 5's operator integration)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness import Kube, read_log, run_phase, stage, wait_for

from extraction_operator.api.constants import ANNOTATION_BREAKERS, ANNOTATION_REDRIVE
from extraction_operator.breaker import format_timestamp
from extraction_operator.controller.embedded import EmbeddedOperator

BREAKER = {"failureThreshold": 2, "recoveryTimeoutSeconds": 3, "probeTimeoutSeconds": 5}
FAST = {"limit": 1, "backoff": {"initialSeconds": 0.5, "maxSeconds": 1}}


def _open_document(opened_at: float, error: str = "provider 503") -> str:
    circuit = {
        "state": "open",
        "failures": 2,
        "successes": 0,
        "generation": 1,
        "opens": 1,
        "openedAt": format_timestamp(opened_at),
        "lastError": error,
    }
    return json.dumps({"v": 1, "circuits": {"llm": circuit}})


def _spec(*stages: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": "local",
        "retry": FAST,
        "circuitBreakers": {"llm": BREAKER},
        "stages": list(stages),
    }


def _spec_calls(operator: EmbeddedOperator, cause: str) -> float:
    assert operator.state is not None
    value = operator.state.metrics.registry.get_sample_value(
        "extraction_spec_handler_invocations_total", {"cause": cause}
    )
    return value or 0.0


def test_breaker_writes_do_not_trigger_spec_handlers(
    cluster: Any, kube: Kube, stage_log: Path
) -> None:
    with EmbeddedOperator(kubeconfig=str(cluster.kubeconfig), resync_seconds=2.0) as operator:
        assert operator.ready.wait(30)
        kube.create_run("quiet-breaker", _spec(stage("a", stage_log, sleep=5, circuits=["llm"])))
        wait_for(run_phase(kube, "quiet-breaker", "Running"), 30)
        before = _spec_calls(operator, "update")
        for failures in range(1, 6):
            document = json.loads(_open_document(time.time()))
            document["circuits"]["llm"].update(state="closed", failures=failures)
            kube.patch_run(
                "quiet-breaker",
                {"metadata": {"annotations": {ANNOTATION_BREAKERS: json.dumps(document)}}},
            )
        time.sleep(1.0)
        assert _spec_calls(operator, "update") == before, "breaker writes fired a spec handler"
        # Control: a change that matters (the re-drive annotation) does fire it.
        kube.patch_run("quiet-breaker", {"metadata": {"annotations": {ANNOTATION_REDRIVE: "x"}}})
        wait_for(lambda: _spec_calls(operator, "update") > before, 10, what="update handler")


def test_open_circuit_holds_a_stage_as_blocked_until_recovery(
    cluster: Any, kube: Kube, stage_log: Path
) -> None:
    with EmbeddedOperator(kubeconfig=str(cluster.kubeconfig), resync_seconds=2.0) as operator:
        assert operator.ready.wait(30)
        opened = time.time()
        kube.create_run(
            "held",
            _spec(stage("guarded", stage_log, circuits=["llm"])),
            annotations={ANNOTATION_BREAKERS: _open_document(opened)},
        )

        def blocked() -> dict[str, Any] | None:
            node = kube.get_run("held").get("status", {}).get("nodes", {}).get("guarded", {})
            return node if node.get("phase") == "Blocked" else None

        node = wait_for(blocked, 15, what="the guarded node to be Blocked")
        assert node["reason"] == "CircuitOpen"
        assert kube.jobs("held") == [], "nothing may launch while the circuit is open"
        run = kube.get_run("held")
        assert run["status"]["circuits"]["llm"]["state"] == "open"
        assert "provider 503" in run["status"]["circuits"]["llm"]["lastError"]
        assert run["status"]["circuitSummary"].startswith("llm: open, next probe ")
        events = {e["reason"]: e["message"] for e in kube.events("held")}
        assert "provider 503" in events.get("CircuitOpened", "")
        # At recovery time the operator launches the blocked work so one pod can probe.
        run = wait_for(run_phase(kube, "held", "Succeeded"), 30)
        first_start = read_log(stage_log)[0]["t"]
        assert first_start >= opened + BREAKER["recoveryTimeoutSeconds"] - 0.5
        assert run["status"]["nodes"]["guarded"]["attempts"] == 1


def test_exit_75_waits_as_blocked_without_using_a_retry(
    cluster: Any, kube: Kube, stage_log: Path
) -> None:
    with EmbeddedOperator(kubeconfig=str(cluster.kubeconfig), resync_seconds=2.0) as operator:
        assert operator.ready.wait(30)
        # Retry limit 0: if exit 75 consumed an attempt, the run would fail at once.
        spec = _spec(stage("guarded", stage_log, fail_attempts=2, exit_code=75, circuits=["llm"]))
        spec["retry"] = {"limit": 0, "backoff": {"initialSeconds": 0.5}}
        kube.create_run("tempfail", spec)
        run = wait_for(run_phase(kube, "tempfail", "Succeeded", "Failed"), 40)
        node = run["status"]["nodes"]["guarded"]
        assert run["status"]["phase"] == "Succeeded", run["status"]
        assert node["attempts"] == 3
        assert node.get("failures", 0) == 0
        assert "StageBlocked" in {e["reason"] for e in kube.events("tempfail")}
