"""A node's presence in the cluster: its Node object, Ready heartbeats and its Lease.

The node lifecycle controller judges a node by its Lease in `kube-node-lease` (renewed by the
kubelet every 10 s; stale after 40 s) and its `Ready` condition: a node that stops renewing is
marked `Unknown`, tainted `unreachable` and its pods evicted. So the node registers itself (as
`system:node:<name>`, NodeRestriction lets it create only its own Node and Lease, and set taints
only at creation), then every `interval` seconds renews the Lease and re-posts its conditions with
a fresh `lastHeartbeatTime`. The documents are built by pure functions, unit-tested apart.

The Node advertises capacity the scheduler fits pods into (`cpu`, `memory`, `pods`,
`ephemeral-storage`), `InternalIP` 127.0.0.1 (pods' `hostIP`), and `nodeInfo` describing the host,
with `containerRuntimeVersion: process://...` saying what really runs pods. It has no kubelet
endpoint (`daemonEndpoints` port 0): nothing serves `pods/log` or `exec`, so `kubectl logs` does
not work on this tier; tests read logs from the node object instead (`ProcessNode.logs`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .jobcontroller import timestamp
from .kubeapi import LEASES, NODES, ApiClient, ApiError

log = logging.getLogger(__name__)

JSON = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
RUNTIME_VERSION = "process://extraction-operator"
DEFAULT_CAPACITY = {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def microtime(moment: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, as Lease times are written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeConfig:
    """What the node says about itself when it registers."""

    name: str
    kubelet_version: str = "v0.0.0"
    capacity: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[JSON, ...] = ()
    address: str = "127.0.0.1"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return platform.platform()


def node_info(kubelet_version: str) -> JSON:
    return {
        "machineID": _read("/etc/machine-id"),
        "systemUUID": "",
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": os.uname().release,
        "osImage": _os_image(),
        "containerRuntimeVersion": RUNTIME_VERSION,
        "kubeletVersion": kubelet_version,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": _ARCHES.get(platform.machine(), platform.machine()),
    }


def node_conditions(now: datetime, since: datetime) -> list[JSON]:
    """Ready, and no pressure of any kind; heartbeats at `now`, unchanged since `since`."""
    rows = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "process node is posting ready status"),
    ]
    return [
        {"type": kind, "status": status, "reason": reason, "message": message,
         "lastHeartbeatTime": timestamp(now), "lastTransitionTime": timestamp(since)}
        for kind, status, reason, message in rows
    ]  # fmt: skip


def node_status(config: NodeConfig, now: datetime, since: datetime) -> JSON:
    return {
        "capacity": dict(config.capacity),
        "allocatable": dict(config.capacity),
        "conditions": node_conditions(now, since),
        "addresses": [
            {"type": "InternalIP", "address": config.address},
            {"type": "Hostname", "address": config.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": node_info(config.kubelet_version),
    }


def node_labels(config: NodeConfig) -> dict[str, str]:
    """The well-known labels a kubelet sets (all in NodeRestriction's allowed set), plus extras."""
    arch = _ARCHES.get(platform.machine(), platform.machine())
    return {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        **config.labels,
    }


def node_manifest(config: NodeConfig, now: datetime) -> JSON:
    spec: JSON = {"taints": list(config.taints)} if config.taints else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.name, "labels": node_labels(config)},
        "spec": spec,
        "status": node_status(config, now, now),
    }


def lease_manifest(node_name: str, node_uid: str, now: datetime) -> JSON:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": microtime(now),
        },
    }


class NodeHeartbeat:
    """Registers the Node and keeps it alive; `paused` stops the heartbeats (a node outage)."""

    def __init__(
        self, client: ApiClient, config: NodeConfig, *, interval: float = HEARTBEAT_SECONDS
    ) -> None:
        self.client = client
        self.config = config
        self.interval = interval
        self.paused = False
        self.beats = 0  # successful renewals, for tests and logs
        self._since = datetime.now(UTC)

    async def register(self) -> JSON:
        """Create the Node (or take over an existing one of this name) and its Lease."""
        now = datetime.now(UTC)
        self._since = now
        try:
            node = await self.client.create(NODES.path(), node_manifest(self.config, now))
        except ApiError as exc:
            if not exc.conflict:
                raise
            node = await self.client.patch(
                NODES.path(None, self.config.name),
                {"metadata": {"labels": node_labels(self.config)}},
            )
            log.info("node %s: registered before; taking it over", self.config.name)
        await self._post_status(now)
        uid = str(node["metadata"]["uid"])
        try:
            await self.client.create(
                LEASES.path(LEASE_NAMESPACE), lease_manifest(self.config.name, uid, now)
            )
        except ApiError as exc:
            if not exc.conflict:
                raise
            await self._renew_lease(now)
        log.info("node %s: registered", self.config.name)
        return node

    async def wait_schedulable(self, within: float) -> None:
        """Wait until the node lifecycle controller has seen the node Ready and lifted the
        `not-ready` taint it puts on new nodes, so pods created next are scheduled at once."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            node = await self.client.get(NODES.path(None, self.config.name))
            taints = (node.get("spec") or {}).get("taints") or []
            if not any(t.get("key") in LIFECYCLE_TAINTS for t in taints if isinstance(t, dict)):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"node {self.config.name} still tainted {taints} after {within:.0f} s: "
                    "is the node lifecycle controller running?"
                )
            await asyncio.sleep(0.2)

    async def beat(self) -> None:
        now = datetime.now(UTC)
        await self._renew_lease(now)
        await self._post_status(now)
        self.beats += 1

    async def run(self) -> None:
        """Beat every `interval` seconds until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(self.interval)
            if self.paused:
                continue
            try:
                await self.beat()
            except ApiError as exc:
                log.warning("node %s: heartbeat failed: %s", self.config.name, exc)

    async def _renew_lease(self, now: datetime) -> None:
        path = LEASES.path(LEASE_NAMESPACE, self.config.name)
        spec = {"holderIdentity": self.config.name, "renewTime": microtime(now),
                "leaseDurationSeconds": LEASE_SECONDS}  # fmt: skip
        await self.client.patch(path, {"spec": spec})

    async def _post_status(self, now: datetime) -> None:
        path = NODES.path(None, self.config.name, "status")
        await self.client.patch(path, {"status": node_status(self.config, now, self._since)})
