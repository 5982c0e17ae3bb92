"""The two API calls the breaker needs, behind a small protocol.

The store only ever reads the run and writes one annotation with a resourceVersion precondition,
so the Kubernetes client, the in-process fake (`memory.py`) and test doubles all fit this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class BookkeepingError(Exception):
    """The breaker's own API traffic failed; callers log it and carry on as if closed."""


class WriteConflict(BookkeepingError):
    """The resourceVersion precondition failed (409 from a merge patch, 422 from a JSON-patch
    `test`): someone else wrote first. Re-read and retry."""


class ApiUnavailable(BookkeepingError):
    """Anything else: 5xx, 429, network errors, timeouts, a missing or replaced run."""


class AccessDenied(BookkeepingError):
    """The API server refused the request (401 or 403): this pod's identity may not read or
    patch its run. Not an outage, so never reported as one: retrying cannot help until someone
    changes the ServiceAccount or its RBAC, and the fix is worth saying (`breaker.forbidden`)."""

    def __init__(self, message: str, *, status: int, run: str, identity: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.run = run  # namespace/name
        self.identity = identity  # "system:serviceaccount:ns:sa", when known


# The words the admission policy (manifests/admission/stage-confinement.yaml) uses when the run's
# status does not name the requesting pod's Job; a manifest test keeps the two in step.
NOT_ENROLLED_MARKER = "runs no stage of ExtractionRun"


class NotEnrolled(AccessDenied):
    """The admission policy refused this pod: the run's status does not (yet) name its Job.

    The operator records a Job in `status.nodes` right after creating it, so a pod that starts
    fast can ask first: a race, not a verdict. The store waits for the operator (a bounded time)
    instead of losing the write; only once that wait is spent is it a refusal like any other."""

    def __init__(self, message: str, *, run: str, identity: str | None = None) -> None:
        super().__init__(message, status=403, run=run, identity=identity)


@dataclass(frozen=True)
class RunSnapshot:
    resource_version: str
    annotation: str | None
    circuit_configs: Mapping[str, Any] | None = None
    """The run's raw `spec.circuitBreakers`, the fallback when EXTRACTION_CIRCUITS is unset."""


class RunApi(Protocol):
    def read(self) -> RunSnapshot:
        """Read the run. Raises ApiUnavailable, AccessDenied or NotEnrolled."""
        ...

    def write(self, resource_version: str, annotation: str) -> RunSnapshot:
        """Set the annotation iff the run still has `resource_version`; return the new snapshot.
        Raises WriteConflict, ApiUnavailable, AccessDenied or NotEnrolled."""
        ...

    @property
    def description(self) -> str:
        """`namespace/name` for log messages."""
        ...
