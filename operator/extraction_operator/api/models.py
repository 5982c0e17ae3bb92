"""Pydantic models of the ExtractionRun resource: the single source of truth for its schema.

The CRD's openAPIV3Schema is generated from these classes (see `crd.py`), so field names, bounds and
defaults are written once. Field names are camelCase on the wire (`dependsOn`) and snake_case in
Python (`depends_on`). Cross-field rules that need the whole graph (cycles, unknown dependencies)
live in `validation.py` and return problems instead of raising, so the operator can report them as
a `Stalled` condition rather than crash.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from .constants import (
    DEFAULT_START_TIMEOUT_SECONDS,
    MAX_MESSAGE_BYTES,
    MAX_SHARDS,
    MAX_STAGE_NAME,
    MAX_STAGES,
    MAX_START_PROBLEMS,
)

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A C identifier, as Kubernetes requires of env var names it validates strictly.
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"

StageName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_STAGE_NAME, pattern=DNS_LABEL_PATTERN),
]
CircuitName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
PositiveSeconds = Annotated[int, Field(gt=0, le=30 * 24 * 3600)]
ExitCode = Annotated[int, Field(ge=0, le=255)]
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_QUANTITY_MAX_LENGTH = 64


def _check_quantity(value: object) -> int | str:
    """One validator instead of an `int | str` union: a union reports one error per branch, with
    pydantic's branch labels (`cpu.int`, `cpu.constrained-str`) in the location."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, str)
        and len(value) <= _QUANTITY_MAX_LENGTH
        and _QUANTITY_RE.fullmatch(value)
    ):
        return value
    raise ValueError(
        f"{repr(value)[:80]} must be a Kubernetes quantity such as 500m, 2, 1Gi or 512Mi"
    )


# A Kubernetes resource quantity: `500m`, `1Gi` or a bare number, as Pod specs accept it.
# `maxLength` bounds the cost of the CRD's `self == oldSelf` rule, which compares resources too.
Quantity = Annotated[
    int | str,
    PlainValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "maxLength": _QUANTITY_MAX_LENGTH,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class _Model(BaseModel):
    """camelCase on the wire; unknown fields rejected, so a typo (`dependOn`) is an error."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )


# ---------------------------------------------------------------------------------------------- env


class KeySelector(_Model):
    name: ObjectName
    key: Annotated[str, Field(min_length=1, max_length=253)]
    optional: bool | None = None


class FieldSelector(_Model):
    field_path: Annotated[str, Field(min_length=1, max_length=253)]
    api_version: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class EnvVarSource(_Model):
    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None
    field_ref: FieldSelector | None = None


class EnvVar(_Model):
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)]
    value: Annotated[str, Field(max_length=32768)] | None = None
    value_from: EnvVarSource | None = None


class LocalObjectRef(_Model):
    name: ObjectName
    optional: bool | None = None


class EnvFromSource(_Model):
    prefix: Annotated[str, Field(max_length=64)] | None = None
    secret_ref: LocalObjectRef | None = None
    config_map_ref: LocalObjectRef | None = None


EnvList = Annotated[list[EnvVar], Field(max_length=64)]
EnvFromList = Annotated[list[EnvFromSource], Field(max_length=16)]


# ----------------------------------------------------------------------------- workspace, resources


class PersistentVolumeClaimRef(_Model):
    claim_name: ObjectName
    read_only: bool = False


class EmptyDirSource(_Model):
    size_limit: Quantity | None = None


class Workspace(_Model):
    """A volume every stage pod mounts, so stages hand data to each other through files."""

    persistent_volume_claim: PersistentVolumeClaimRef | None = None
    empty_dir: EmptyDirSource | None = None
    mount_path: Annotated[str, Field(min_length=2, max_length=256, pattern=r"^/.*")] = "/workspace"


class Resources(_Model):
    requests: Annotated[dict[str, Quantity], Field(max_length=16)] = Field(default_factory=dict)
    limits: Annotated[dict[str, Quantity], Field(max_length=16)] = Field(default_factory=dict)


# ------------------------------------------------------------------------------ retries, breakers


class Backoff(_Model):
    initial_seconds: Annotated[float, Field(gt=0, le=86400)] = 10
    factor: Annotated[float, Field(ge=1, le=100)] = 2
    max_seconds: Annotated[float, Field(gt=0, le=86400)] = 300
    jitter: Literal["full", "none"] = "full"


class RetryPolicy(_Model):
    limit: Annotated[int, Field(ge=0, le=20)] = 3
    backoff: Backoff = Field(default_factory=Backoff)
    non_retryable_exit_codes: Annotated[list[ExitCode], Field(max_length=32)] = Field(
        default_factory=list
    )


class BackoffOverride(_Model):
    initial_seconds: Annotated[float, Field(gt=0, le=86400)] | None = None
    factor: Annotated[float, Field(ge=1, le=100)] | None = None
    max_seconds: Annotated[float, Field(gt=0, le=86400)] | None = None
    jitter: Literal["full", "none"] | None = None


class RetryOverride(_Model):
    """A stage's retry policy: every field falls back to the run's `spec.retry`."""

    limit: Annotated[int, Field(ge=0, le=20)] | None = None
    backoff: BackoffOverride | None = None
    non_retryable_exit_codes: Annotated[list[ExitCode], Field(max_length=32)] | None = None


class CircuitBreakerConfig(_Model):
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 5
    recovery_timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 30
    success_threshold: Annotated[int, Field(ge=1, le=100)] = 1
    probe_timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 120


# ------------------------------------------------------------------------------------------ spec


class Stage(_Model):
    name: StageName
    command: (
        Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=64)] | None
    ) = None
    args: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=256)] = Field(
        default_factory=list
    )
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    depends_on: Annotated[list[StageName], Field(max_length=32)] = Field(default_factory=list)
    timeout_seconds: PositiveSeconds | None = None
    # This stage's start deadline; unset: the run's `startTimeoutSeconds`.
    start_timeout_seconds: PositiveSeconds | None = None
    circuits: Annotated[list[CircuitName], Field(max_length=8)] = Field(default_factory=list)
    shards: Annotated[int, Field(ge=1, le=MAX_SHARDS)] = 1
    resources: Resources | None = None
    env: EnvList = Field(default_factory=list)
    retry: RetryOverride | None = None


class ExtractionRunSpec(_Model):
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    service_account_name: ObjectName | None = None
    suspend: bool = False
    active_deadline_seconds: PositiveSeconds | None = None
    # How long an attempt may take from launch until its stage container runs; see api.md.
    start_timeout_seconds: PositiveSeconds = DEFAULT_START_TIMEOUT_SECONDS
    parallelism: Annotated[int, Field(ge=1, le=1000)] = 4
    fail_fast: bool = True
    env: EnvList = Field(default_factory=list)
    env_from: EnvFromList = Field(default_factory=list)
    workspace: Workspace | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    circuit_breakers: Annotated[dict[CircuitName, CircuitBreakerConfig], Field(max_length=16)] = (
        Field(default_factory=dict)
    )
    stages: Annotated[list[Stage], Field(min_length=1, max_length=MAX_STAGES)]

    @field_validator("stages")
    @classmethod
    def _stage_names_unique(cls, stages: list[Stage]) -> list[Stage]:
        seen: set[str] = set()
        for index, stage in enumerate(stages):
            if stage.name in seen:
                raise ValueError(
                    f"stages[{index}].name {stage.name!r} is used twice; stage names must be unique"
                )
            seen.add(stage.name)
        return stages


# ---------------------------------------------------------------------------------------- status

RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"]
NodePhase = Literal["Pending", "Waiting", "Running", "Succeeded", "Failed", "Blocked", "Skipped"]
ConditionStatus = Literal["True", "False", "Unknown"]
Message = Annotated[str, Field(max_length=MAX_MESSAGE_BYTES)]


class _StatusModel(BaseModel):
    """Status is written by the operator and read back after restarts; unknown keys are ignored so
    an older operator can read a newer one's status instead of refusing to reconcile."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(_StatusModel):
    type: Annotated[str, Field(max_length=64)]
    status: ConditionStatus
    reason: Annotated[str, Field(max_length=128)] = ""
    message: Annotated[str, Field(max_length=4096)] = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class NodeStatus(_StatusModel):
    phase: NodePhase = "Pending"
    # Jobs launched for this node so far; never decreases, so attempt N always names the same Job.
    attempts: Annotated[int, Field(ge=0)] = 0
    # Failed attempts that count against the retry limit since the last re-drive. Exits with
    # code 75 (a circuit was open) launch a new attempt but do not count here.
    failures: Annotated[int, Field(ge=0)] = 0
    job_name: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_retry_at: datetime | None = None
    exit_code: int | None = None
    reason: Annotated[str, Field(max_length=64)] | None = None
    message: Message | None = None
    # Why the current attempt's pod could not start, each reason once, in the order first seen:
    # the durable memory that reports each cause with one Event per attempt, across reconciles
    # and operator restarts. Cleared when a new attempt starts.
    start_problems: Annotated[
        list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_START_PROBLEMS)
    ] = Field(default_factory=list)
    # A provider failure of the last attempt still being judged: circuit -> the generation its
    # failed call was admitted under. It uses a retry only if that circuit has not opened by the
    # time the retry is due (docs/circuit-breakers.md, "Outages do not spend retries").
    provider_failures: Annotated[dict[str, Annotated[int, Field(ge=0)]], Field(max_length=16)] = (
        Field(default_factory=dict)
    )


class CircuitSummary(_StatusModel):
    """The operator's view of one breaker, mirrored from the annotation for `kubectl describe`."""

    state: Literal["closed", "open", "half-open"] = "closed"
    failures: int = 0
    opened_at: datetime | None = None
    # When a probe may next start: the recovery time of an open circuit, or the expiry of a probe
    # lease someone holds. Read from the annotation after it was held to what is plausible (a
    # stage may write anything there: docs/security.md), so it is the time the operator acts on.
    next_probe_at: datetime | None = None
    last_error: Message | None = None


class ExtractionRunStatus(_StatusModel):
    phase: RunPhase = "Pending"
    observed_generation: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: str = ""
    message: Annotated[str, Field(max_length=4096)] = ""
    conditions: list[Condition] = Field(default_factory=list)
    nodes: dict[str, NodeStatus] = Field(default_factory=dict)
    circuits: dict[str, CircuitSummary] = Field(default_factory=dict)
    # `circuits` in one line, for the `Circuits` column of `kubectl get xrun -o wide`.
    circuit_summary: Annotated[str, Field(max_length=1024)] | None = None
    # The last `extraction.dev/redrive` annotation value acted upon: a new value means "re-drive".
    redrive: str | None = None
    redriven_at: datetime | None = None
    # The operator instance that last drove this run; a different one means a restart or takeover.
    reconciled_by: Annotated[str, Field(max_length=253)] | None = None
