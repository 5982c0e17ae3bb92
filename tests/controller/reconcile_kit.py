"""A scripted stand-in for `KubeApi`, to drive the `Reconciler` pass by pass without a cluster."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from extraction_operator.controller.api import launch_token
from extraction_operator.controller.rest import ApiError

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
JSON = dict[str, Any]


class FakeApi:
    """Records Jobs, status writes and Events. `lose_next_writes` makes that many status writes
    lose their compare-and-swap (as when kopf patched its annotations meanwhile); `access`
    answers SubjectAccessReviews by verb (None: the API does not serve them, a 404)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JSON] = {}
        self.created: list[str] = []
        self.writes: list[JSON] = []
        self.events: list[tuple[str, str, str]] = []
        self.lose_next_writes = 0
        self.rv = 1
        self.access: dict[str, bool] | None = None
        self.reviews: list[JSON] = []

    async def create_job(self, namespace: str, manifest: JSON, run_uid: str) -> tuple[JSON, bool]:
        name = manifest["metadata"]["name"]
        existing = self.jobs.get(name)
        if existing is not None:
            ours = launch_token(manifest)
            return existing, ours is not None and launch_token(existing) == ours
        job = copy.deepcopy(manifest)
        job["metadata"]["uid"] = f"uid-{name}"
        self.jobs[name] = job
        self.created.append(name)
        return job, True

    async def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)

    async def replace_status(
        self, namespace: str, name: str, resource_version: str, status: JSON
    ) -> JSON | None:
        if self.lose_next_writes:
            self.lose_next_writes -= 1
            self.rv += 1
            return None
        self.rv += 1
        self.writes.append(copy.deepcopy(status))
        return {
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self.rv)},
            "status": copy.deepcopy(status),
        }

    async def post_event(
        self, run: Mapping[str, Any], event_type: str, reason: str, message: str
    ) -> None:
        self.events.append((event_type, reason, message))

    async def review_access(self, review: JSON) -> JSON:
        self.reviews.append(review)
        if self.access is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = review["spec"]["resourceAttributes"]["verb"]
        allowed = self.access.get(verb, False)
        return {"status": {"allowed": allowed, "reason": "" if allowed else "no RBAC rule"}}


def run_body(
    name: str = "xr",
    spec: JSON | None = None,
    status: JSON | None = None,
    rv: int = 1,
    namespace: str = "ns",
) -> JSON:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "run-uid",
            "generation": 1,
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-11-23T12:00:00Z",
        },
        "spec": spec or {"image": "img", "stages": [{"name": "a", "command": ["true"]}]},
        "status": status or {},
    }


def event_messages(api: FakeApi, reason: str) -> list[str]:
    return [message for _, r, message in api.events if r == reason]
