"""May a run's stage pods keep its circuit breakers? The operator asks the API server.

The stage SDK reads the run and compare-and-swaps its `extraction.dev/circuit-breakers` annotation
as the stage's ServiceAccount, both through PATCH. The operator grants that account `patch` on the
run (`stagerbac.py`); where it cannot (no rights to create Roles there), the account may lack it,
and then every breaker call is refused with a 403 and the SDK fails open: the stage
runs, the breaker protects nothing, and nothing about it can reach the run by the stage's own
hand, because writing the run is exactly what was refused and a stage pod may write nothing else
the operator reads (its termination message belongs to the stage and comes only at exit).

So the operator asks instead, with a SubjectAccessReview per verb (`patch`) for
`system:serviceaccount:<namespace>:<serviceAccountName or default>` on `extractionruns/<run>`:
the very question the API server will answer the SDK. That is known before the first stage pod
starts, holds for Python stages and `guard`-wrapped programs alike, and does not depend on the
provider failing (a healthy stage still reads). It sees what authorization decides (RBAC,
authorization webhooks), not admission policies, which admit only the run's own stage pods (the
SDK's log reports a refusal there, and a pod without a token at all). The verdict goes to the
planner, which turns it into the `CircuitBreakersShared` condition and an Event
(`planner/access.py`).

Answers are cached per (namespace, ServiceAccount, run): an allowed one for five minutes, a
refusal for thirty seconds, so fixing RBAC shows up within a resync or two at the cost of two
small requests per run and minute. An API server that does not serve SubjectAccessReviews, or an
operator not allowed to create them, is logged once and not asked again for ten minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from extraction_operator.api.constants import GROUP, PLURAL
from extraction_operator.planner import BreakerAccess

from .api import KubeApi
from .rest import ApiError

logger = logging.getLogger(__name__)

# The stage SDK reads its run through a no-op PATCH (admission can judge that; a GET it could
# not), so `patch` is all a stage identity needs, and all the operator grants (stagerbac.py).
VERBS = ("patch",)
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
ERROR_TTL = 30.0
UNSUPPORTED_TTL = 600.0

AccessKey = tuple[str, str, str]  # namespace, service account, run


@dataclass(frozen=True)
class _Cached:
    verdict: BreakerAccess | None
    expires: float


def breaker_identity(spec: Mapping[str, Any]) -> str | None:
    """The ServiceAccount the run's stage pods use, if any stage names a circuit (else None:
    nothing to check). Untrusted input: anything odd reads as "no circuits"."""
    stages = spec.get("stages")
    uses = isinstance(stages, list) and any(
        isinstance(stage, Mapping) and stage.get("circuits") for stage in stages
    )
    if not uses:
        return None
    account = spec.get("serviceAccountName")
    return account if isinstance(account, str) and account else "default"


def review(namespace: str, account: str, run: str, verb: str) -> dict[str, Any]:
    """The SubjectAccessReview the API server answers for the SDK's request `verb` on the run."""
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{namespace}:{account}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": GROUP,
                "resource": PLURAL,
                "name": run,
            },
        },
    }


def _verdict(namespace: str, account: str, run: str, answers: Mapping[str, Any]) -> BreakerAccess:
    who = f"stage pods run as ServiceAccount {namespace}/{account}"
    denied = [verb for verb in VERBS if not answers[verb].get("allowed")]
    if not denied:
        return BreakerAccess(True, f"{who}, which may patch {PLURAL}/{run}")
    errors = {
        str(answers[verb].get("evaluationError"))
        for verb in denied
        if answers[verb].get("evaluationError")
    }
    detail = f" ({'; '.join(sorted(errors))})" if errors else ""
    return BreakerAccess(
        False,
        f"{who}, which may not {' or '.join(denied)} {PLURAL}/{run}{detail}: the stage SDK's "
        "circuit-breaker reads and writes are refused (HTTP 403), so the breakers are not "
        "shared and fail open. The operator grants it per run (a Role extraction-stage-<run>) "
        "when it may create Roles and RoleBindings in namespace "
        f"{namespace}: give it the rights of manifests/clusterrole.yaml there",
    )


class BreakerAccessChecker:
    def __init__(self, api: KubeApi, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.clock = clock
        self._cache: dict[AccessKey, _Cached] = {}
        self._unsupported_until = float("-inf")
        self._reported_unsupported = False

    def forget(self, namespace: str, run: str) -> None:
        for key in [k for k in self._cache if k[0] == namespace and k[2] == run]:
            del self._cache[key]

    async def check(self, namespace: str, account: str, run: str) -> BreakerAccess | None:
        """The cached or fresh verdict; None when it cannot be known now (never raises)."""
        now = self.clock()
        key = (namespace, account, run)
        cached = self._cache.get(key)
        if cached is not None and now < cached.expires:
            return cached.verdict
        if now < self._unsupported_until:
            return None
        try:
            answers = await asyncio.gather(
                *(self.api.review_access(review(namespace, account, run, v)) for v in VERBS)
            )
        except ApiError as error:
            if error.status in (403, 404):
                self._unsupported(error)
                return None
            return self._remember(key, None, ERROR_TTL, error)
        except Exception as error:  # an outage must not fail the reconcile: try again later
            return self._remember(key, None, ERROR_TTL, error)
        statuses: dict[str, Mapping[str, Any]] = {}
        for verb, answer in zip(VERBS, answers, strict=True):
            status = answer.get("status")
            statuses[verb] = status if isinstance(status, Mapping) else {}
        verdict = _verdict(namespace, account, run, statuses)
        return self._remember(key, verdict, ALLOWED_TTL if verdict.allowed else DENIED_TTL)

    def _remember(
        self,
        key: AccessKey,
        verdict: BreakerAccess | None,
        ttl: float,
        error: BaseException | None = None,
    ) -> BreakerAccess | None:
        if error is not None:
            logger.warning(
                "Cannot check the stage ServiceAccount of %s/%s: %s", key[0], key[2], error
            )
        self._cache[key] = _Cached(verdict, self.clock() + ttl)
        return verdict

    def _unsupported(self, error: ApiError) -> None:
        self._unsupported_until = self.clock() + UNSUPPORTED_TTL
        if self._reported_unsupported:
            return
        self._reported_unsupported = True
        if error.status == 403:
            logger.warning(
                "The operator may not create subjectaccessreviews (authorization.k8s.io), so it "
                "cannot tell when a run's stage ServiceAccount may not keep its circuit breakers; "
                "grant `create` on them as manifests/clusterrole.yaml does (%s)",
                error,
            )
        else:
            logger.info(
                "The API server does not serve SubjectAccessReviews; stage ServiceAccounts' "
                "circuit-breaker permissions are not checked (%s)",
                error,
            )
