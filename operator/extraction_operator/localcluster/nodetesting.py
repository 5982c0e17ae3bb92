"""Helpers for tests on a real control plane with a `ProcessNode` (the real-cluster tier).

Tests there share one cluster for the whole session, so each test works in a namespace of its
own (`new_namespace`), made ready the way pods need it: the controller manager has created its
`default` ServiceAccount (without which admission refuses pods) and published `kube-root-ca.crt`
(which every pod's service account volume reads). Like `testing.py`, this is a module rather than
a test file because pytest's importlib mode lets test modules import packages only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from .kubeapi import CONFIGMAPS, PODS, SERVICEACCOUNTS, ApiClient, ApiError, Resource
from .testing import wait_for

JSON = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", namespaced=False)


def pod_manifest(
    name: str, command: list[str], *, container: JSON | None = None, **spec: Any
) -> JSON:
    """A bare Pod with one container running `command`, `restartPolicy: Never` unless given."""
    body = {"name": "main", "image": "ignored:latest", "command": command, **(container or {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [body], **spec},
    }


def phase(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def finished(pod: JSON) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def container_state(pod: JSON) -> JSON:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    state: JSON = statuses[0].get("state") or {}
    return state


async def new_namespace(client: ApiClient, prefix: str = "rn") -> str:
    """Create a uniquely named namespace and wait until pods can run in it."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    await client.create(NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": name}})  # fmt: skip

    async def ready() -> bool:
        try:
            await client.get(SERVICEACCOUNTS.path(name, "default"))
            await client.get(CONFIGMAPS.path(name, "kube-root-ca.crt"))
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    await wait_for(ready, within=30, what=f"namespace {name} to be ready for pods")
    return name


async def delete_namespace(client: ApiClient, name: str) -> None:
    try:
        await client.delete(NAMESPACES.path(None, name))
    except ApiError as exc:
        if not exc.not_found:
            raise


async def wait_pod(
    client: ApiClient,
    namespace: str,
    name: str,
    predicate: Callable[[JSON], bool],
    *,
    within: float = 30.0,
    what: str = "a condition",
) -> JSON:
    """Poll a pod until `predicate(pod)` holds; returns the pod."""

    async def probe() -> JSON | None:
        try:
            pod = await client.get(PODS.path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return pod if predicate(pod) else None

    result: JSON = await wait_for(probe, within=within, what=f"pod {namespace}/{name}: {what}")
    return result


async def wait_finished(client: ApiClient, namespace: str, name: str, within: float = 30.0) -> JSON:
    return await wait_pod(client, namespace, name, finished, within=within, what="to finish")


async def wait_gone(client: ApiClient, path: str, *, within: float = 30.0) -> None:
    """Poll until GET `path` answers 404."""

    async def gone() -> bool:
        try:
            await client.get(path)
        except ApiError as exc:
            if exc.not_found:
                return True
            raise
        return False

    await wait_for(gone, within=within, what=f"{path} to be deleted")
