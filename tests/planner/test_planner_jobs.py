"""Stage Job manifests, field by field (DESIGN.md section 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from planner_kit import UID, snapshot, spec, stage

from extraction_operator.planner import plan_run


def first_job(run_spec: dict[str, Any], name: str = "xr") -> dict[str, Any]:
    plan = plan_run(snapshot(run_spec, name=name))
    return plan.create_jobs[0]


FULL_SPEC = spec(
    stage(
        "right",
        shards=4,
        image="stage-img:2",
        args=["--fast"],
        timeoutSeconds=600,
        circuits=["llm"],
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}},
        env=[{"name": "MODEL", "value": "large"}, {"name": "ONLY_STAGE", "value": "1"}],
    ),
    serviceAccountName="extraction-stage",
    env=[
        {"name": "MODEL", "value": "small"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ],
    envFrom=[{"configMapRef": {"name": "cfg"}}],
    workspace={"persistentVolumeClaim": {"claimName": "corpus-data"}, "mountPath": "/data"},
    circuitBreakers={"llm": {"failureThreshold": 5, "recoveryTimeoutSeconds": 30}},
)


def test_metadata_labels_annotation_and_owner() -> None:
    job = first_job(FULL_SPEC)
    meta = job["metadata"]
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert meta["name"] == "xr-right-0-1"
    assert meta["namespace"] == "ns"
    assert meta["labels"] == {
        "extraction.dev/run": "xr",
        "extraction.dev/stage": "right",
        "extraction.dev/shard": "0",
        "extraction.dev/attempt": "1",
        "extraction.dev/node": "right-0",
    }
    assert meta["annotations"] == {"extraction.dev/node": "right[0]"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "extraction.dev/v1alpha1",
            "kind": "ExtractionRun",
            "name": "xr",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    template = job["spec"]["template"]
    assert template["metadata"]["labels"] == meta["labels"]
    assert template["metadata"]["annotations"] == meta["annotations"]


def test_job_spec_and_container() -> None:
    job = first_job(FULL_SPEC)
    assert job["spec"]["backoffLimit"] == 0
    # The default start window (600 s) plus the stage's run time: see the next test.
    assert job["spec"]["activeDeadlineSeconds"] == 600 + 600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "extraction-stage"
    assert pod["volumes"] == [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "corpus-data"}}
    ]
    (container,) = pod["containers"]
    assert container["name"] == "stage"
    assert container["image"] == "stage-img:2"
    assert container["command"] == ["run", "right"]
    assert container["args"] == ["--fast"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False}
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}
    assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/data"}]
    assert container["envFrom"] == [{"configMapRef": {"name": "cfg"}}]


def test_env_builtins_then_run_then_stage_with_stage_winning() -> None:
    env = first_job(FULL_SPEC)["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [item["name"] for item in env]
    assert names == [
        "EXTRACTION_RUN",
        "EXTRACTION_NAMESPACE",
        "EXTRACTION_RUN_UID",
        "EXTRACTION_STAGE",
        "EXTRACTION_NODE",
        "EXTRACTION_ATTEMPT",
        "SHARD_INDEX",
        "SHARD_COUNT",
        "EXTRACTION_WORKSPACE",
        "EXTRACTION_CIRCUITS",
        "MODEL",
        "TOKEN",
        "ONLY_STAGE",
    ]
    values = {item["name"]: item.get("value") for item in env}
    assert values["EXTRACTION_RUN"] == "xr"
    assert values["EXTRACTION_NAMESPACE"] == "ns"
    assert values["EXTRACTION_RUN_UID"] == UID
    assert values["EXTRACTION_STAGE"] == "right"
    assert values["EXTRACTION_NODE"] == "right[0]"
    assert values["EXTRACTION_ATTEMPT"] == "1"
    assert values["SHARD_INDEX"] == "0"
    assert values["SHARD_COUNT"] == "4"
    assert values["EXTRACTION_WORKSPACE"] == "/data"
    assert values["MODEL"] == "large"
    circuits = json.loads(values["EXTRACTION_CIRCUITS"] or "")
    assert circuits["llm"]["failureThreshold"] == 5
    assert circuits["llm"]["recoveryTimeoutSeconds"] == 30
    token = next(item for item in env if item["name"] == "TOKEN")
    assert token == {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}


@pytest.mark.parametrize(
    ("run_start", "stage_start", "deadline"),
    [(None, None, 60 + 600), (30, None, 60 + 30), (30, 5, 60 + 5), (None, 5, 60 + 5)],
)
def test_the_jobs_deadline_is_the_start_window_plus_the_run_time(
    run_start: int | None, stage_start: int | None, deadline: int
) -> None:
    """The Job controller counts from the Job's start, which includes the time its pod could
    not start: a deadline of `timeoutSeconds` alone would cut the stage's run time short by
    however long it waited (or fail a pod stuck starting as `DeadlineExceeded`)."""
    fields = {} if stage_start is None else {"startTimeoutSeconds": stage_start}
    run = {} if run_start is None else {"startTimeoutSeconds": run_start}
    job = first_job(spec(stage("a", timeoutSeconds=60, **fields), **run))
    assert job["spec"]["activeDeadlineSeconds"] == deadline


def test_minimal_stage_uses_run_image_and_omits_optional_fields() -> None:
    job = first_job(spec({"name": "chunk"}))
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "extraction.dev/shard" not in job["metadata"]["labels"]
    pod = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    assert "volumes" not in pod
    container = pod["containers"][0]
    assert container["image"] == "img:1"
    assert "command" not in container
    assert "args" not in container
    assert "envFrom" not in container
    values = {item["name"]: item["value"] for item in container["env"]}
    assert values["SHARD_INDEX"] == "0"
    assert values["SHARD_COUNT"] == "1"
    assert values["EXTRACTION_CIRCUITS"] == "{}"
    assert "EXTRACTION_WORKSPACE" not in values


def test_empty_dir_workspace() -> None:
    job = first_job(spec(stage("a"), workspace={"emptyDir": {"sizeLimit": "1Gi"}}))
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "workspace", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "workspace", "mountPath": "/workspace"}
    ]


def test_long_run_name_gives_valid_names_and_labels() -> None:
    name = "run-" + "x" * 80
    job = first_job(spec(stage("right", shards=2)), name=name)
    assert len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["name"].endswith("-1")
    assert len(job["metadata"]["labels"]["extraction.dev/run"]) <= 63
    assert job["metadata"]["ownerReferences"][0]["name"] == name


def test_awkward_stage_names_get_distinct_jobs() -> None:
    plan = plan_run(snapshot(spec(stage("right", shards=4), stage("right-3"), parallelism=10)))
    names = [job["metadata"]["name"] for job in plan.create_jobs]
    spelled = [job["metadata"]["labels"]["extraction.dev/node"] for job in plan.create_jobs]
    assert len(names) == 5
    assert len(set(names)) == 5
    assert len(set(spelled)) == 5
