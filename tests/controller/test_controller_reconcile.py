"""The reconciler's own bookkeeping across passes: lost status races, launches and adoption."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconcile_kit import NOW, FakeApi, event_messages, run_body

from extraction_operator.controller.api import KubeApi
from extraction_operator.controller.reconcile import Reconciler
from extraction_operator.controller.rest import ApiError
from extraction_operator.metrics import Metrics

KEY = ("ns", "xr")


def _reconciler(api: FakeApi, instance: str = "op-1") -> Reconciler:
    return Reconciler(api, Metrics(), clock=lambda: NOW, instance=instance)  # type: ignore[arg-type]


def _no_pods(_: str) -> Sequence[Mapping[str, Any]]:
    return ()


async def _settle(reconciler: Reconciler) -> None:
    await reconciler.drain_events(1.0)


async def test_a_job_created_before_a_lost_status_race_is_not_reported_as_adopted() -> None:
    api = FakeApi()
    reconciler = _reconciler(api)
    # Pass 1 creates the Job, but kopf patched its annotations meanwhile: the CAS fails.
    api.lose_next_writes = 1
    first = await reconciler.reconcile(KEY, run_body(rv=1), [], _no_pods)
    assert api.created == ["xr-a-1"]
    assert not first.wrote_status
    # Pass 2 sees kopf's newer object (same empty status) before the watch shows the Job.
    second = await reconciler.reconcile(KEY, run_body(rv=2), [], _no_pods)
    await _settle(reconciler)
    assert second.wrote_status
    assert api.created == ["xr-a-1"], "no duplicate launch"
    assert api.writes[-1]["nodes"]["a"]["attempts"] == 1
    started = event_messages(api, "StageStarted")
    assert started == ["a: started attempt 1 (job xr-a-1)"], api.events
    assert not any("adopted" in message for _, _, message in api.events)
    assert reconciler.metrics.registry.get_sample_value("extraction_job_adoptions_total") == 0


async def test_a_job_left_by_an_earlier_operator_process_is_still_adopted() -> None:
    api = FakeApi()
    crashed = _reconciler(api, instance="op-1")
    api.lose_next_writes = 1  # it created the Job and died before its status write landed
    await crashed.reconcile(KEY, run_body(rv=1), [], _no_pods)
    job = api.jobs["xr-a-1"]
    restarted = _reconciler(api, instance="op-1")  # same pod name, new process
    await restarted.reconcile(KEY, run_body(rv=2), [job], _no_pods)
    await _settle(restarted)
    assert event_messages(api, "StageStarted") == ["a: adopted attempt 1 (job xr-a-1)"]


class _ExistingJobRest:
    """POST answers 409 (the Job exists); GET returns that Job."""

    def __init__(self, existing: dict[str, Any]) -> None:
        self.existing = existing

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        if method == "POST":
            raise ApiError(409, "AlreadyExists", "jobs.batch exists")
        return self.existing


async def test_a_retried_create_that_finds_its_own_job_is_a_launch_not_an_adoption() -> None:
    reconciler = _reconciler(FakeApi())
    owner = [{"uid": "run-uid", "controller": True}]
    manifest = reconciler._stamped({"metadata": {"name": "xr-a-1", "ownerReferences": owner}})
    # The first POST landed but its answer was lost: the retry meets the Job it made (409).
    api = KubeApi(_ExistingJobRest(manifest))  # type: ignore[arg-type]
    job, created = await api.create_job("ns", manifest, "run-uid")
    assert created
    assert job is manifest
    # The same name from another process (a crashed predecessor) is an adoption.
    other = _reconciler(FakeApi())._stamped({"metadata": {"name": "xr-a-1"}})
    _, created = await api.create_job("ns", other, "run-uid")
    assert not created


def _failed_job(reason: str, message: str, timeout: int = 5) -> dict[str, Any]:
    """Attempt 1 of node `a`, failed with the given Job condition, one second ago."""
    return {
        "metadata": {
            "name": "xr-a-1",
            "uid": "uid-xr-a-1",
            "labels": {"extraction.dev/run": "xr", "extraction.dev/attempt": "1"},
            "annotations": {"extraction.dev/node": "a"},
            "ownerReferences": [{"uid": "run-uid", "controller": True}],
        },
        "spec": {"activeDeadlineSeconds": timeout},
        "status": {
            "startTime": "2026-11-23T11:59:50Z",
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": "2026-11-23T11:59:59Z",
                }
            ],
        },
    }


RUNNING = {
    "phase": "Running",
    "startedAt": "2026-11-23T11:59:50Z",
    "nodes": {"a": {"phase": "Running", "attempts": 1, "jobName": "xr-a-1"}},
}
TIMED_SPEC = {
    "image": "img",
    "retry": {"limit": 0},
    "stages": [{"name": "a", "command": ["sleep", "60"], "timeoutSeconds": 5}],
}


async def test_a_deadline_failure_is_accounted_at_once_without_pod_facts() -> None:
    """On a real cluster the Job controller deletes the pods of a Job past its deadline, so the
    pod facts a plain failure waits for never come: no grace period for DeadlineExceeded."""
    api = FakeApi()
    reconciler = _reconciler(api)
    job = _failed_job("DeadlineExceeded", "Job was active longer than specified deadline")
    result = await reconciler.reconcile(
        KEY, run_body(spec=TIMED_SPEC, status=RUNNING), [job], _no_pods
    )
    assert result.wrote_status
    node = api.writes[-1]["nodes"]["a"]
    assert (node["phase"], node["reason"]) == ("Failed", "DeadlineExceeded")
    assert node["message"] == "the stage ran longer than its timeoutSeconds (5s)"


async def test_a_plain_failure_still_waits_briefly_for_its_pod() -> None:
    api = FakeApi()
    reconciler = _reconciler(api)
    job = _failed_job("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    result = await reconciler.reconcile(
        KEY, run_body(spec=TIMED_SPEC, status=RUNNING), [job], _no_pods
    )
    nodes = api.writes[-1]["nodes"] if api.writes else RUNNING["nodes"]
    assert nodes["a"]["phase"] == "Running", "accounted before the pod's exit code could arrive"
    assert result.requeue_after is not None
    assert 0 < result.requeue_after <= 5


GUARDED_SPEC = {
    "image": "img",
    "circuitBreakers": {"llm": {"failureThreshold": 2}},
    "stages": [{"name": "a", "command": ["true"], "circuits": ["llm"]}],
}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


async def test_a_stage_account_without_the_stage_role_is_reported_on_the_run() -> None:
    """The stage SDK would get 403 on every breaker call and fail open: say so on the run."""
    api = FakeApi()
    api.access = {"get": False, "patch": False}
    reconciler = _reconciler(api)
    await reconciler.reconcile(KEY, run_body(spec=GUARDED_SPEC), [], _no_pods)
    await _settle(reconciler)
    users = {review["spec"]["user"] for review in api.reviews}
    assert users == {"system:serviceaccount:ns:default"}
    assert {r["spec"]["resourceAttributes"]["verb"] for r in api.reviews} == {"patch"}
    assert all(r["spec"]["resourceAttributes"]["name"] == "xr" for r in api.reviews)
    shared = _condition(api.writes[-1], "CircuitBreakersShared")
    assert shared is not None
    assert (shared["status"], shared["reason"]) == ("False", "Forbidden")
    warning = event_messages(api, "CircuitBreakersNotShared")
    assert len(warning) == 1
    assert "ns/default" in warning[0]
    assert "may not patch extractionruns/xr" in warning[0]
    assert "Role extraction-stage-<run>" in warning[0]
    assert "manifests/clusterrole.yaml" in warning[0]


async def test_the_stage_account_named_in_the_spec_is_the_one_checked() -> None:
    api = FakeApi()
    api.access = {"get": True, "patch": True}
    reconciler = _reconciler(api)
    guarded = {**GUARDED_SPEC, "serviceAccountName": "extraction-stage"}
    await reconciler.reconcile(KEY, run_body(spec=guarded), [], _no_pods)
    await _settle(reconciler)
    assert {r["spec"]["user"] for r in api.reviews} == {"system:serviceaccount:ns:extraction-stage"}
    shared = _condition(api.writes[-1], "CircuitBreakersShared")
    assert shared is not None
    assert shared["status"] == "True"
    assert not event_messages(api, "CircuitBreakersNotShared")
    # Cached: the next pass asks nothing.
    asked = len(api.reviews)
    await reconciler.reconcile(KEY, run_body(spec=guarded, status=api.writes[-1]), [], _no_pods)
    assert len(api.reviews) == asked


async def test_no_subject_access_reviews_on_the_server_is_no_verdict_and_no_crash() -> None:
    api = FakeApi()  # answers 404, like an API server that does not serve them
    reconciler = _reconciler(api)
    result = await reconciler.reconcile(KEY, run_body(spec=GUARDED_SPEC), [], _no_pods)
    assert result.wrote_status
    assert _condition(api.writes[-1], "CircuitBreakersShared") is None
    asked = len(api.reviews)
    await reconciler.reconcile(KEY, run_body(spec=GUARDED_SPEC, rv=5), [], _no_pods)
    assert len(api.reviews) == asked, "not asked again right away"


async def test_runs_without_circuits_are_not_checked() -> None:
    api = FakeApi()
    api.access = {"get": False, "patch": False}
    reconciler = _reconciler(api)
    await reconciler.reconcile(KEY, run_body(), [], _no_pods)
    assert api.reviews == []
