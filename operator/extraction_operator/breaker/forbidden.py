"""Say plainly when the API server refuses the breaker's bookkeeping, who was refused, and the fix.

A stage whose identity may not `patch` its run (no per-run grant from the operator, a pod without
its own token, code outside the run's stage pods) still runs: the breaker fails open and every
call proceeds as if the circuit were closed. That is the right behaviour for the stage, but
silent it would be a trap, because the breaker then protects nothing and shares nothing. A
401/403 is not an outage either, so it must not read like one ("API unreachable"): it is logged
as refused, at ERROR, once per process and distinct cause, naming the identity the API server saw
and what to change. (The operator reports the same problem on the run, from a
SubjectAccessReview: see `controller/access.py`.)
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from pathlib import Path

from .api import AccessDenied, NotEnrolled

logger = logging.getLogger(__name__)

TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_USER = re.compile(r'User "([^"]+)"')

_lock = threading.Lock()
_reported: set[tuple[str, int, str | None]] = set()


def identity_from_message(message: str) -> str | None:
    """The user a 403 names: `... forbidden: User "system:serviceaccount:ns:sa" cannot get ...`."""
    match = _USER.search(message)
    return match.group(1) if match else None


def identity_from_token(path: Path = TOKEN_PATH) -> str | None:
    """The `sub` claim of the pod's ServiceAccount token (read, never verified: only to name it)."""
    try:
        payload = path.read_text(encoding="ascii").strip().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (OSError, IndexError, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) and subject else None


def denied(run: str, status: int, server_message: str) -> AccessDenied:
    """The AccessDenied for a 401/403 answer on run `namespace/name`."""
    identity = identity_from_message(server_message) or identity_from_token()
    detail = f": {server_message}" if server_message else ""
    return AccessDenied(f"{run}: HTTP {status}{detail}", status=status, run=run, identity=identity)


def explain(error: AccessDenied) -> str:
    """One log line: what was refused, for whom, what it means for the stage, and the fix."""
    who = error.identity or "this pod's ServiceAccount"
    namespace = error.run.split("/", 1)[0]
    if isinstance(error, NotEnrolled):
        fix = (
            "check that the operator is running: it records every stage Job in the run's "
            "status.nodes right after creating it, and only a pod whose Job is recorded there may "
            "keep the run's breakers (docs/security.md)"
        )
        what = "the run's status does not name this pod's Job, even after waiting for the operator"
    elif error.status == 401:
        fix = (
            "make sure the stage pod mounts a valid ServiceAccount token "
            "(automountServiceAccountToken must not be false)"
        )
        what = f"the API server did not accept the credentials of {who}"
    else:
        fix = (
            "list the circuits the stage uses in spec.stages[].circuits: for such a run the "
            "operator grants the run's stage ServiceAccount `patch` on that run alone (Role "
            "extraction-stage-<run>), and may do so only with the RBAC rights of "
            "manifests/clusterrole.yaml; run the stage code in the run's own stage pod, whose "
            "token the admission policy of manifests/admission accepts (docs/security.md)"
        )
        what = f"{who} may not patch this run in namespace {namespace}"
    return (
        f"circuit breakers are NOT shared: breaker bookkeeping on run {error.run} was refused "
        f"(forbidden: {error}); {what}. The breaker fails open, so calls proceed as if every "
        f"circuit were closed. Fix: {fix}."
    )


def report_denied(error: AccessDenied) -> None:
    """Log the refusal at ERROR the first time this process meets it, at DEBUG after that."""
    key = (error.run, error.status, error.identity)
    with _lock:
        first = key not in _reported
        _reported.add(key)
    logger.log(logging.ERROR if first else logging.DEBUG, "%s", explain(error))
