"""The pure core of the operator: from a snapshot of one run to a plan of what to do about it.

No I/O and no clock inside: the kopf shell gathers a `RunSnapshot` (spec, status, the run's Jobs
via `observe_job`, circuit gates, now), calls `plan_run`, and carries out the `Plan`."""

from .naming import ANNOTATION_NODE, job_name, node_spellings, run_label_value
from .observe import awaits_pod_facts, observe_job
from .plan import plan_run
from .types import BreakerAccess, CircuitGate, ObservedJob, Plan, PlannedEvent, RunSnapshot

__all__ = [
    "ANNOTATION_NODE",
    "BreakerAccess",
    "CircuitGate",
    "ObservedJob",
    "Plan",
    "PlannedEvent",
    "RunSnapshot",
    "awaits_pod_facts",
    "job_name",
    "node_spellings",
    "observe_job",
    "plan_run",
    "run_label_value",
]
