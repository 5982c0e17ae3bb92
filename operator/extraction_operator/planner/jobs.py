"""The batch/v1 Job manifest of one (node, attempt), exactly as DESIGN.md section 2 says.

Everything here follows from the spec and the node, so the same attempt always yields the same
manifest and the same name: a restarted operator that re-creates it gets a 409 and adopts the Job
instead of launching a duplicate."""

from __future__ import annotations

import json
from typing import Any

from extraction_operator.api.constants import (
    API_VERSION,
    ENV_ATTEMPT,
    ENV_CIRCUITS,
    ENV_NAMESPACE,
    ENV_NODE,
    ENV_RUN,
    ENV_RUN_UID,
    ENV_SHARD_COUNT,
    ENV_SHARD_INDEX,
    ENV_STAGE,
    ENV_WORKSPACE,
    KIND,
    LABEL_ATTEMPT,
    LABEL_NODE,
    LABEL_RUN,
    LABEL_SHARD,
    LABEL_STAGE,
)
from extraction_operator.api.models import EnvVar, ExtractionRunSpec

from .naming import ANNOTATION_NODE, job_name, run_label_value
from .nodes import Node
from .starting import start_timeout

CONTAINER_NAME = "stage"
WORKSPACE_VOLUME = "workspace"


def _env_entry(var: EnvVar) -> dict[str, Any]:
    return var.model_dump(by_alias=True, exclude_none=True)


def _circuits_env(spec: ExtractionRunSpec, node: Node) -> str:
    """`{"llm": {"failureThreshold": 5, ...}}`: the stage SDK learns its thresholds from this."""
    configs = {
        name: spec.circuit_breakers[name].model_dump(by_alias=True)
        for name in node.stage.circuits
        if name in spec.circuit_breakers
    }
    return json.dumps(configs, separators=(",", ":"))


def _env(
    spec: ExtractionRunSpec, node: Node, run_name: str, namespace: str, run_uid: str, attempt: int
) -> list[dict[str, Any]]:
    """Built-in variables, then the run's env, then the stage's; a later entry with the same name
    replaces an earlier one in place (the stage wins over the run), so no name appears twice."""
    entries: list[dict[str, Any]] = [
        {"name": ENV_RUN, "value": run_name},
        {"name": ENV_NAMESPACE, "value": namespace},
        {"name": ENV_RUN_UID, "value": run_uid},
        {"name": ENV_STAGE, "value": node.stage.name},
        {"name": ENV_NODE, "value": node.key},
        {"name": ENV_ATTEMPT, "value": str(attempt)},
        {"name": ENV_SHARD_INDEX, "value": str(node.shard_index)},
        {"name": ENV_SHARD_COUNT, "value": str(node.shard_count)},
    ]
    if spec.workspace is not None:
        entries.append({"name": ENV_WORKSPACE, "value": spec.workspace.mount_path})
    entries.append({"name": ENV_CIRCUITS, "value": _circuits_env(spec, node)})
    entries.extend(_env_entry(var) for var in spec.env)
    entries.extend(_env_entry(var) for var in node.stage.env)
    merged: dict[str, dict[str, Any]] = {}
    for entry in entries:
        merged[entry["name"]] = entry  # dicts keep the first position, take the last value
    return list(merged.values())


def _volume(spec: ExtractionRunSpec) -> dict[str, Any] | None:
    workspace = spec.workspace
    if workspace is None:
        return None
    if workspace.persistent_volume_claim is not None:
        claim = workspace.persistent_volume_claim
        source: dict[str, Any] = {"claimName": claim.claim_name}
        if claim.read_only:
            source["readOnly"] = True
        return {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": source}
    empty: dict[str, Any] = {}
    if workspace.empty_dir is not None and workspace.empty_dir.size_limit is not None:
        empty["sizeLimit"] = workspace.empty_dir.size_limit
    return {"name": WORKSPACE_VOLUME, "emptyDir": empty}


def job_labels(run_name: str, node: Node, attempt: int) -> dict[str, str]:
    labels = {
        LABEL_RUN: run_label_value(run_name),
        LABEL_STAGE: node.stage.name,
        LABEL_ATTEMPT: str(attempt),
        LABEL_NODE: node.spelling,
    }
    if node.shard is not None:
        labels[LABEL_SHARD] = str(node.shard)
    return labels


def build_job(
    *,
    spec: ExtractionRunSpec,
    node: Node,
    attempt: int,
    run_name: str,
    namespace: str,
    run_uid: str,
    spellings: dict[str, str],
) -> dict[str, Any]:
    """The complete Job manifest for `node`'s attempt number `attempt`."""
    labels = job_labels(run_name, node, attempt)
    annotations = {ANNOTATION_NODE: node.key}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": node.stage.image or spec.image,
        "env": _env(spec, node, run_name, namespace, run_uid, attempt),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if node.stage.command is not None:
        container["command"] = list(node.stage.command)
    if node.stage.args:
        container["args"] = list(node.stage.args)
    if spec.env_from:
        container["envFrom"] = [
            source.model_dump(by_alias=True, exclude_none=True) for source in spec.env_from
        ]
    if node.stage.resources is not None:
        resources = node.stage.resources.model_dump(by_alias=True, exclude_none=True)
        container["resources"] = {key: value for key, value in resources.items() if value}
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if spec.service_account_name is not None:
        pod_spec["serviceAccountName"] = spec.service_account_name
    volume = _volume(spec)
    if volume is not None and spec.workspace is not None:
        pod_spec["volumes"] = [volume]
        container["volumeMounts"] = [
            {"name": WORKSPACE_VOLUME, "mountPath": spec.workspace.mount_path}
        ]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {
            "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
            "spec": pod_spec,
        },
    }
    if node.stage.timeout_seconds is not None:
        # The Job controller's clock starts with the Job, before the pod may start: the start
        # window plus the run time, so this backstop (for an operator that is down) never cuts
        # either short. The operator itself enforces each from its own start (`starting.py`).
        job_spec["activeDeadlineSeconds"] = node.stage.timeout_seconds + start_timeout(
            spec, node.stage
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run_name, node.key, attempt, spellings),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": run_name,
                    "uid": run_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
