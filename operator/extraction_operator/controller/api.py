"""The operator's writes, each one idempotent or guarded, each one retried on transient errors.

- Creating a Job that already exists is adoption: Job names are deterministic per (node, attempt),
  so a 409 means an earlier incarnation of the operator (or this one, before a crash) created it.
  It is adopted only if its controller ownerReference is this run; a foreign Job with our name is
  an error worth reporting, never silently accepted. One 409 is not adoption: a create retried
  after its response was lost finds the Job its own first try made, recognised by the launch token
  (`extraction.dev/launched-by`) this process stamps on every Job it creates.
- Status is replaced with a compare-and-swap on `resourceVersion` (JSON patch `test` + `add`), so
  a stale view (an old replica, a lagging cache) can never overwrite newer status.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from extraction_operator.api.constants import ANNOTATION_LAUNCHED_BY, GROUP, PLURAL, VERSION

from .rest import JSON, JSON_PATCH, ApiError, KubeRest
from .retry import call_with_retry

logger = logging.getLogger(__name__)


class JobNameTaken(Exception):
    """A Job with the deterministic name exists but belongs to something else."""


def _run_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def _jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(isinstance(ref, Mapping) and ref.get("uid") == owner_uid for ref in refs)


def launch_token(obj: Mapping[str, Any]) -> str | None:
    """The `extraction.dev/launched-by` annotation of a Job (or manifest), if any."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    token = annotations.get(ANNOTATION_LAUNCHED_BY) if isinstance(annotations, Mapping) else None
    return token if isinstance(token, str) and token else None


class KubeApi:
    """Domain-level API calls used by the reconciler."""

    def __init__(self, rest: KubeRest) -> None:
        self.rest = rest

    async def create_job(self, namespace: str, manifest: JSON, run_uid: str) -> tuple[JSON, bool]:
        """Create the Job, or adopt the one that exists. Returns (job, created): `created` is also
        True for a Job that exists because an earlier try of this very create landed (same launch
        token), since nothing was adopted then."""
        name = manifest["metadata"]["name"]
        try:
            created = await call_with_retry(
                lambda: self.rest.request("POST", _jobs_path(namespace), body=manifest)
            )
            return created, True
        except ApiError as error:
            if error.status != 409:
                raise
        existing = await call_with_retry(
            lambda: self.rest.request("GET", f"{_jobs_path(namespace)}/{name}")
        )
        if not owned_by(existing, run_uid):
            raise JobNameTaken(
                f"Job {namespace}/{name} exists but is not owned by this run; "
                "delete it or rename the run"
            )
        ours = launch_token(manifest)
        if ours is not None and launch_token(existing) == ours:
            logger.debug("Job %s/%s: an earlier try of this create landed", namespace, name)
            return existing, True
        logger.info("Adopted existing Job %s/%s", namespace, name)
        return existing, False

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; a Job already gone is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await call_with_retry(
                lambda: self.rest.request("DELETE", f"{_jobs_path(namespace)}/{name}", body=body)
            )
        except ApiError as error:
            if error.status != 404:
                raise

    async def replace_status(
        self, namespace: str, name: str, resource_version: str, status: JSON
    ) -> JSON | None:
        """Compare-and-swap the whole status. None when the run changed meanwhile (or is gone):
        the caller re-plans from the fresher object the watch delivers."""
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": status},
        ]
        try:
            return await call_with_retry(
                lambda: self.rest.request(
                    "PATCH",
                    _run_path(namespace, name) + "/status",
                    body=patch,
                    content_type=JSON_PATCH,
                )
            )
        except ApiError as error:
            if error.is_conflict or error.status == 404:
                logger.debug("Status write of %s/%s lost a race: %s", namespace, name, error)
                return None
            raise

    async def review_access(self, review: JSON) -> JSON:
        """Create a SubjectAccessReview (nothing is stored; the answer is in its `status`)."""
        return await call_with_retry(
            lambda: self.rest.request(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review
            ),
            max_attempts=2,
        )

    async def post_event(
        self, run: Mapping[str, Any], event_type: str, reason: str, message: str
    ) -> None:
        """Record a core/v1 Event on the run. Best effort: an Event lost to an outage is logged,
        never retried forever and never allowed to fail a reconcile."""
        meta = run.get("metadata", {})
        namespace = meta.get("namespace", "default")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ExtractionRun",
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "extraction-operator"},
            "reportingComponent": "extraction.dev/operator",
            "reportingInstance": "extraction-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await call_with_retry(
                lambda: self.rest.request(
                    "POST", f"/api/v1/namespaces/{namespace}/events", body=event
                ),
                max_attempts=3,
            )
        except Exception as error:
            logger.warning("Could not post Event %s on %s: %s", reason, meta.get("name"), error)
