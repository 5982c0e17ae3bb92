"""Helpers for tests that drive Jobs on the local cluster (polling, Job manifests, pod state).

Shared by the job runner's tests and available to any test using `LocalCluster`; pytest runs
with `--import-mode=importlib`, where test modules cannot import each other, hence a module here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .kubeapi import JOBS, PODS, ApiClient

JSON = dict[str, Any]
NAMESPACE = "default"


class WaitTimeout(AssertionError):
    """A polled condition did not become true in time."""


def make_job(name: str, command: list[str], *, container: JSON | None = None, **spec: Any) -> JSON:
    """A batch/v1 Job with one container running `command` (backoffLimit 0 unless given)."""
    body = {"name": "main", "image": "ignored:latest", "command": command, **(container or {})}
    pod_spec = {"restartPolicy": "Never", "containers": [body]}
    pod_spec.update(spec.pop("pod_spec", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            **spec,
        },
    }


def python(code: str) -> list[str]:
    return ["python", "-c", code]


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, within: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `probe` until it returns something truthy; raise WaitTimeout after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise WaitTimeout(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def get_job(client: ApiClient, name: str) -> JSON:
    return await client.get(JOBS.path(NAMESPACE, name))


async def pods_of(client: ApiClient, job_name: str) -> list[JSON]:
    items, _ = await client.list(PODS.path(NAMESPACE), labelSelector=f"job-name={job_name}")
    return items


def job_condition(job: JSON, kind: str) -> JSON | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


async def wait_job_finished(client: ApiClient, name: str, within: float = 15.0) -> JSON:
    async def finished() -> JSON | None:
        job = await get_job(client, name)
        return job if job_condition(job, "Complete") or job_condition(job, "Failed") else None

    result: JSON = await wait_for(finished, within=within, what=f"job {name} to finish")
    return result


async def wait_pod_phase(client: ApiClient, job_name: str, phase: str) -> JSON:
    async def probe() -> JSON | None:
        pods = await pods_of(client, job_name)
        return next((p for p in pods if (p.get("status") or {}).get("phase") == phase), None)

    result: JSON = await wait_for(probe, what=f"a pod of {job_name} in phase {phase}")
    return result


def terminated(pod: JSON) -> JSON:
    state: JSON = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie awaiting its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
