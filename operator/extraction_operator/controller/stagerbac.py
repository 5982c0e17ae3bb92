"""Per-run grants for stage pods: `patch` on their own run, for their own ServiceAccount, only.

A stage pod keeps the run's circuit breakers by patching one annotation of its run. A Role for the
whole namespace would let a stage patch every run there (the confused deputy of issue 12), and
RBAC cannot name objects that do not exist yet, so the operator grants it per run: a Role
`extraction-stage-<run>` with `patch` on `extractionruns/<run>`, and a RoleBinding of the same
name for the run's stage ServiceAccount (`spec.serviceAccountName`, else `default`). Both are owned
by the run (an ownerReference), so garbage collection removes them with it. No `get`: a stage
reads its run through a no-op patch, which admission judges (docs/security.md).

Granted before the run's first Job is created (the reconciler asks before planning), so a stage pod
never starts without it; a run whose stages declare no circuits gets none. A re-drive needs
nothing new; a ServiceAccount changed while the run was finished is re-bound when it runs again;
after a restart, a create answered 409 is checked (owned by this run?) and remembered. RBAC's
escalation rules apply: the operator can create this Role only because it holds `patch` on
extractionruns itself, and an admission policy (manifests/admission/operator-grants.yaml) holds
every Role and RoleBinding it writes to exactly this shape.

Where the API server does not serve RBAC (the emulator) or the operator may not create Roles (an
older install), nothing is granted, which is logged once; the caller then asks the API server
whether the stage identity may patch the run anyway (`access.py`), which reports a refusal on the
run. A Role or RoleBinding of our name that another owner holds is left alone and reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from extraction_operator.api.constants import API_VERSION, GROUP, KIND, PLURAL
from extraction_operator.planner import BreakerAccess
from extraction_operator.planner.naming import shorten

from .rest import MERGE_PATCH, ApiError
from .retry import call_with_retry

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
PREFIX = "extraction-stage-"
MANAGED_BY = "extraction-operator"
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces"
MAX_NAME = 253
UNSUPPORTED_TTL = 600.0
BLOCKED_TTL = 30.0

RunKey = tuple[str, str]  # namespace, run


def grant_name(run: str) -> str:
    """The name of the run's Role and RoleBinding (shortened with a hash if it grew too long)."""
    return shorten(PREFIX + run, MAX_NAME)


def _metadata(namespace: str, run: str, uid: str) -> JSON:
    return {
        "name": grant_name(run),
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/component": "stage",
            "app.kubernetes.io/part-of": "extraction-operator",
        },
        # No blockOwnerDeletion: it would need `update` on the run's finalizers.
        "ownerReferences": [
            {"apiVersion": API_VERSION, "kind": KIND, "name": run, "uid": uid, "controller": True}
        ],
    }


def role_manifest(namespace: str, run: str, uid: str) -> JSON:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(namespace, run, uid),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [PLURAL],
                "resourceNames": [run],
                "verbs": ["patch"],
            }
        ],
    }


def subjects(namespace: str, account: str) -> list[JSON]:
    return [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]


def binding_manifest(namespace: str, run: str, uid: str, account: str) -> JSON:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(namespace, run, uid),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": grant_name(run),
        },
        "subjects": subjects(namespace, account),
    }


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(ref, Mapping) and ref.get("uid") == uid for ref in refs)


class _Blocked(Exception):
    """An object of our name exists and belongs to someone else (or to a deleted run)."""


class StageGrants:
    """Ensures each run's grant once per process; remembers what it ensured."""

    def __init__(self, api: Any, clock: Callable[[], float] = time.monotonic) -> None:
        # A KubeApi; test doubles without a REST client grant nothing (as on the emulator).
        self._rest = getattr(api, "rest", None)
        self._clock = clock
        self._granted: dict[RunKey, tuple[str, str]] = {}  # -> (run uid, account)
        self._blocked_until: dict[RunKey, float] = {}
        # RBAC not served at all (404) holds for every namespace; a refusal (403) for one.
        self._unserved_until = float("-inf") if self._rest is not None else float("inf")
        self._refused_until: dict[str, float] = {}
        self._reported: set[int] = set()

    def forget(self, namespace: str, run: str) -> None:
        self._granted.pop((namespace, run), None)
        self._blocked_until.pop((namespace, run), None)

    async def ensure(
        self, namespace: str, run: str, uid: str, account: str
    ) -> BreakerAccess | None:
        """Grant the run's stage identity `patch` on the run; the verdict for the planner, or
        None when the grant is not in place (see the module docstring). Never raises."""
        key = (namespace, run)
        if self._granted.get(key) == (uid, account):
            return self._verdict(namespace, run, account)
        now = self._clock()
        waits = (self._unserved_until, self._refused_until.get(namespace, float("-inf")))
        if now < max(waits) or now < self._blocked_until.get(key, float("-inf")):
            return None
        try:
            await self._ensure_role(namespace, run, uid)
            await self._ensure_binding(namespace, run, uid, account)
        except _Blocked as blocked:
            logger.warning("Run %s/%s: cannot grant its stage pods their run: %s", *key, blocked)
            self._blocked_until[key] = now + BLOCKED_TTL
            return None
        except ApiError as error:
            if error.status in (403, 404):
                self._unsupported(namespace, error)
                return None
            self._failed(key, now, error)
            return None
        except Exception as error:  # an outage must not fail the reconcile
            self._failed(key, now, error)
            return None
        self._granted[key] = (uid, account)
        return self._verdict(namespace, run, account)

    def _failed(self, key: RunKey, now: float, error: BaseException) -> None:
        """Try again in a while: an outage passes, an invalid account name (422) waits for a fix,
        and either way the log gets one line per run and while, not one per reconcile."""
        logger.warning("Run %s/%s: granting its stage pods failed: %s", *key, error)
        self._blocked_until[key] = now + BLOCKED_TTL

    def _verdict(self, namespace: str, run: str, account: str) -> BreakerAccess:
        return BreakerAccess(
            True,
            f"stage pods run as ServiceAccount {namespace}/{account}, which may patch "
            f"{PLURAL}/{run} (Role {grant_name(run)}, granted by the operator for this run)",
        )

    async def _request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> JSON:
        rest = self._rest
        assert rest is not None
        result: JSON = await call_with_retry(
            lambda: rest.request(method, path, body=body, **kwargs), max_attempts=3
        )
        return result

    async def _create(self, namespace: str, plural: str, manifest: JSON, uid: str) -> JSON | None:
        """POST; on 409 the existing object if this run owns it (None when it was created)."""
        path = f"{RBAC}/{namespace}/{plural}"
        try:
            await self._request("POST", path, manifest)
            return None
        except ApiError as error:
            if error.status != 409:
                raise
        existing = await self._request("GET", f"{path}/{manifest['metadata']['name']}")
        if not _owned_by(existing, uid):
            raise _Blocked(
                f"{plural}/{manifest['metadata']['name']} exists and is not owned by this run "
                "(a run of the same name deleted moments ago leaves one until garbage "
                "collection removes it); retrying shortly"
            )
        return existing

    async def _ensure_role(self, namespace: str, run: str, uid: str) -> None:
        await self._create(namespace, "roles", role_manifest(namespace, run, uid), uid)

    async def _ensure_binding(self, namespace: str, run: str, uid: str, account: str) -> None:
        manifest = binding_manifest(namespace, run, uid, account)
        existing = await self._create(namespace, "rolebindings", manifest, uid)
        if existing is not None and existing.get("subjects") != manifest["subjects"]:
            # The run's ServiceAccount changed while it was finished, and it runs again.
            await self._request(
                "PATCH",
                f"{RBAC}/{namespace}/rolebindings/{grant_name(run)}",
                {"subjects": manifest["subjects"]},
                content_type=MERGE_PATCH,
            )
            logger.info("Run %s/%s: its stage pods now run as %s", namespace, run, account)

    def _unsupported(self, namespace: str, error: ApiError) -> None:
        """Stop asking for a while, and say so once per kind of answer."""
        until = self._clock() + UNSUPPORTED_TTL
        if error.status == 404:
            self._unserved_until = until
        else:
            self._refused_until[namespace] = until
        if error.status in self._reported:
            return
        self._reported.add(error.status)
        if error.status == 403:
            logger.warning(
                "The operator may not create this Role or RoleBinding in namespace %s, so it "
                "cannot grant stage pods `patch` on their own run there, and their circuit "
                "breakers are not shared; it needs create/get on roles and create/get/patch on "
                "rolebindings (manifests/clusterrole.yaml) and `patch` on extractionruns there "
                "(%s)",
                namespace,
                error,
            )
        else:
            logger.info("The API server does not serve RBAC; stage pods get no grants (%s)", error)
