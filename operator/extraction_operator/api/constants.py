"""Names shared by the CRD, the operator, the stage SDK and the tests.

They live in one module so that a rename is one edit and a typo is an import error, not a silent
mismatch between the operator that writes a label and the selector that reads it.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "extraction.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ExtractionRun"
PLURAL: Final = "extractionruns"
SINGULAR: Final = "extractionrun"
SHORT_NAME: Final = "xrun"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Labels on stage Jobs (DESIGN.md section 2).
LABEL_RUN: Final = f"{GROUP}/run"
LABEL_STAGE: Final = f"{GROUP}/stage"
LABEL_SHARD: Final = f"{GROUP}/shard"
LABEL_ATTEMPT: Final = f"{GROUP}/attempt"
LABEL_NODE: Final = f"{GROUP}/node"

# Annotation on stage Jobs and pods: the exact node key (`right[3]`), which labels cannot spell.
ANNOTATION_NODE: Final = f"{GROUP}/node"

# Annotation on stage Jobs: which operator process launched it (instance and a per-process nonce).
# A create retried after a lost response answers 409; this tells "our own create landed" apart
# from a Job an earlier incarnation left behind, which is what adoption means.
ANNOTATION_LAUNCHED_BY: Final = f"{GROUP}/launched-by"

# Annotations on the run.
ANNOTATION_REDRIVE: Final = f"{GROUP}/redrive"
ANNOTATION_BREAKERS: Final = f"{GROUP}/circuit-breakers"

# How long a stage attempt may take to start (its pod created, scheduled and its container
# running) when neither the run nor the stage says: the default of a Deployment's
# `progressDeadlineSeconds`, long enough for a multi-gigabyte image pull or a node the cluster
# autoscaler adds, short enough that a first-day mistake (a missing ServiceAccount, Secret or
# claim) ends the attempt in minutes rather than never. docs/api.md explains the choice.
DEFAULT_START_TIMEOUT_SECONDS: Final = 600

# Exit code a stage uses to say "a circuit breaker was open, I did not try" (EX_TEMPFAIL).
EXIT_CIRCUIT_OPEN: Final = 75

# Hard limits that keep a run's status inside etcd's object size budget.
MAX_STAGES: Final = 100
MAX_SHARDS: Final = 500
MAX_NODES: Final = 2000
MAX_STAGE_NAME: Final = 40
MAX_MESSAGE_BYTES: Final = 1024
MAX_START_PROBLEMS: Final = 16  # distinct start-problem reasons recorded per attempt

# Env given to every stage container.
ENV_RUN: Final = "EXTRACTION_RUN"
ENV_NAMESPACE: Final = "EXTRACTION_NAMESPACE"
ENV_RUN_UID: Final = "EXTRACTION_RUN_UID"
ENV_STAGE: Final = "EXTRACTION_STAGE"
ENV_NODE: Final = "EXTRACTION_NODE"
ENV_ATTEMPT: Final = "EXTRACTION_ATTEMPT"
ENV_SHARD_INDEX: Final = "SHARD_INDEX"
ENV_SHARD_COUNT: Final = "SHARD_COUNT"
ENV_WORKSPACE: Final = "EXTRACTION_WORKSPACE"
ENV_CIRCUITS: Final = "EXTRACTION_CIRCUITS"
