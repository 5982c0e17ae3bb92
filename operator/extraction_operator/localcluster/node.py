"""`ProcessNode`: the node of a real Kubernetes control plane, running pods as local processes.

The real-cluster test tier starts kube-apiserver, kube-controller-manager and kube-scheduler
(`extraction_operator.controlplane`) but no kubelet. This is its node, made of the parts the
emulator tier already uses, pointed at the real API server with a node's identity:

- `JobRunner` in node mode (`job_controller=False`): the kubelet of one node, running the pods
  the real scheduler bound to it (the real Job controller creates them; a Deployment's pods are
  restarted in place, as `restartPolicy: Always` asks);
- `NodeHeartbeat`: registers the Node, renews its Lease and Ready condition every 10 s;
- `NodePodSetup`: claims, projected volumes with real service account tokens, a private mount
  namespace, in-cluster env;
- `HostPathProvisioner` (only with `provisioner_kubeconfig`): a hostPath PV for every pending
  claim, as its own identity, since a node may not create PersistentVolumes.

The node's kubeconfig should be a client certificate for `system:node:<node_name>` in group
`system:nodes` (`node_identity(name)` gives the pair): the Node authorizer and NodeRestriction then
confine it exactly as a real kubelet, to its own Node and Lease, the pods bound to it, and the
objects those pods reference.

`NodeAgent` is the async composition (use it in async code or inside another loop);
`ProcessNode` runs one on a daemon thread for synchronous callers. Both offer the runner's fault
injection (`kill`, `evict`, `pause` -- which also stops the heartbeats, as an outage does --,
`resume`, `running_pods`, `pid_of`) and `logs`: a real API server serves `pods/<name>/log` by
calling the kubelet's HTTPS endpoint, which this node does not have, so `kubectl logs` does not
work on this tier; read a pod's output with `logs()`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal as signals
import tempfile
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .jobrunner import JobRunner
from .kubeapi import ApiClient
from .kubeconfig import ClientConfig, load_kubeconfig
from .kubelet import RESTART_BACKOFF
from .loopthread import LoopThread
from .mountns import MountNamespaces
from .nodesetup import NodePodSetup
from .nodestatus import DEFAULT_CAPACITY, HEARTBEAT_SECONDS, NodeConfig, NodeHeartbeat
from .podspec import JSON
from .provisioner import HostPathProvisioner

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_NODE_NAME = "process-node"
NODES_GROUP = "system:nodes"


def node_identity(node_name: str) -> tuple[str, str]:
    """The (user, group) a node's client certificate must carry for the Node authorizer."""
    return f"system:node:{node_name}", NODES_GROUP


def _ca_file(config: ClientConfig, workdir: Path) -> Path | None:
    """The cluster CA as a file (pods without a token of their own still verify the server)."""
    if config.ca_file is not None:
        return config.ca_file
    if config.ca_data:
        path = workdir / "ca.crt"
        path.write_text(config.ca_data)
        return path
    return None


class NodeAgent:
    """The process node's parts on the current event loop (see the module docstring)."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        node_name: str = DEFAULT_NODE_NAME,
        provisioner_kubeconfig: Path | None = None,
        grace_seconds_cap: float | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        token_refresh_seconds: float | None = None,
        capacity: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        taints: tuple[JSON, ...] = (),
        reclaim_policy: str = "Delete",
        private_mounts: bool = True,
        restart_backoff: tuple[float, float] = RESTART_BACKOFF,
        request_timeout: float = 10.0,
        schedulable_timeout: float | None = 60.0,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.workdir = Path(workdir)
        self.node_name = node_name
        self.provisioner_kubeconfig = provisioner_kubeconfig
        self._grace_cap = grace_seconds_cap
        self._heartbeat_seconds = heartbeat_seconds
        self._token_refresh = token_refresh_seconds
        self._capacity = dict(capacity or DEFAULT_CAPACITY)
        self._labels = dict(labels or {})
        self._taints = taints
        self._reclaim_policy = reclaim_policy
        self._private_mounts = private_mounts
        self._restart_backoff = restart_backoff
        self._timeout = request_timeout
        self._schedulable_timeout = schedulable_timeout
        self._clients: list[ApiClient] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.heartbeat: NodeHeartbeat | None = None
        self.mounts: MountNamespaces | None = None
        self._runner: JobRunner | None = None

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise RuntimeError("the node is not running")
        return self._runner

    @property
    def api_url(self) -> str:
        return self.runner.api_url

    async def start(self) -> None:
        """Register, start running pods, and return once the node can be scheduled to (unless
        `schedulable_timeout` is None): the node lifecycle controller has lifted the `not-ready`
        taint it gives every new node."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await asyncio.to_thread(self.workdir.mkdir, parents=True, exist_ok=True)
        config = load_kubeconfig(self.kubeconfig)
        client = ApiClient.from_config(config, timeout=self._timeout)
        self._clients.append(client)
        version = await client.get("/version")
        if self._private_mounts:
            self.mounts = await asyncio.to_thread(MountNamespaces.probe)
        node = NodeConfig(
            self.node_name,
            kubelet_version=str(version.get("gitVersion") or "v0.0.0"),
            capacity=self._capacity,
            labels=self._labels,
            taints=self._taints,
        )
        self.heartbeat = NodeHeartbeat(client, node, interval=self._heartbeat_seconds)
        await self.heartbeat.register()
        self._tasks.append(asyncio.create_task(self.heartbeat.run(), name="node-heartbeat"))
        setup = NodePodSetup(
            client,
            node_name=self.node_name,
            ca_file=_ca_file(config, self.workdir),
            mounts=self.mounts,
            token_refresh_seconds=self._token_refresh,
        )
        self._runner = JobRunner(
            client,
            self.workdir / "kubelet",
            node_name=self.node_name,
            grace_seconds_cap=self._grace_cap,
            job_controller=False,
            setup=setup,
            restart_backoff=self._restart_backoff,
        )
        await self._runner.start()
        if self.provisioner_kubeconfig is not None:
            admin = ApiClient.from_kubeconfig(self.provisioner_kubeconfig, timeout=self._timeout)
            self._clients.append(admin)
            provisioner = HostPathProvisioner(
                admin, self.workdir / "persistentvolumes", reclaim_policy=self._reclaim_policy
            )
            self._tasks.append(asyncio.create_task(provisioner.run(), name="node-provisioner"))
        if self._schedulable_timeout is not None:
            await self.heartbeat.wait_schedulable(self._schedulable_timeout)
        log.info("node %s: up against %s (private mounts: %s)", self.node_name, client.url,
                 self.mounts is not None)  # fmt: skip

    async def stop(self) -> None:
        """Stop heartbeats and the provisioner, kill every pod process, close connections.

        The Node object stays, as a stopped kubelet's does (and a node may not delete itself:
        the Node authorizer refuses it); whoever retires the node deletes it with their own
        identity."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._runner is not None:
            await self._runner.stop()
        for client in self._clients:
            await client.close()
        self._clients = []

    async def __aenter__(self) -> NodeAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def pause(self) -> None:
        """A node outage: no pod starts, stops or reports, and the Lease is not renewed."""
        if self.heartbeat is not None:
            self.heartbeat.paused = True
        self.runner.pause()

    def resume(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.paused = False
        self.runner.resume()


class ProcessNode:
    """A `NodeAgent` on its own event loop in a daemon thread; every method is thread-safe.

    `workdir` defaults to a temporary directory removed by `stop()`. Use as a `with` block, or
    `start()`/`stop()`. `call(coroutine)` runs any coroutine on the node's loop.
    """

    def __init__(
        self,
        kubeconfig: Path,
        *,
        provisioner_kubeconfig: Path | None = None,
        workdir: Path | None = None,
        node_name: str = DEFAULT_NODE_NAME,
        **options: Any,
    ) -> None:
        self._temp_dir = None if workdir is not None else Path(tempfile.mkdtemp(prefix="pnode-"))
        self.workdir = Path(workdir) if workdir is not None else self._temp_dir or Path()
        self.agent = NodeAgent(
            kubeconfig,
            self.workdir,
            node_name=node_name,
            provisioner_kubeconfig=provisioner_kubeconfig,
            **options,
        )
        self._loop = LoopThread(f"node-{node_name}")
        self._started = False

    @property
    def node_name(self) -> str:
        return self.agent.node_name

    @property
    def runner(self) -> JobRunner:
        return self.agent.runner

    def start(self, timeout: float = 60.0) -> ProcessNode:
        self._loop.start()
        try:
            self._loop.call(self.agent.start(), timeout=timeout)
        except BaseException:
            self._loop.stop()
            self._remove_workdir()
            raise
        self._started = True
        return self

    def stop(self, timeout: float = 60.0) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._loop.call(self.agent.stop(), timeout=timeout)
        finally:
            self._loop.stop()
            self._remove_workdir()

    def _remove_workdir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> ProcessNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        return self._loop.call(coro, timeout)

    # ---- fault injection and inspection ------------------------------------------------------

    def kill(self, namespace: str, pod_name: str, signal: int = signals.SIGKILL) -> bool:
        """Signal a pod's process group; the pod then fails with exit code 128 + signal."""
        return self.runner.kill(namespace, pod_name, signal)

    def evict(self, namespace: str, pod_name: str) -> bool:
        return self.runner.evict(namespace, pod_name)

    def pause(self) -> None:
        async def act() -> None:
            self.agent.pause()

        self.call(act())

    def resume(self) -> None:
        async def act() -> None:
            self.agent.resume()

        self.call(act())

    def running_pods(self) -> list[tuple[str, str]]:
        return self.runner.running_pods()

    def pid_of(self, namespace: str, pod_name: str) -> int | None:
        return self.runner.pid_of(namespace, pod_name)

    def logs(self, namespace: str, pod_name: str) -> str:
        """A pod's combined stdout and stderr so far (`kubectl logs` does not work here)."""
        return self.runner.logs(namespace, pod_name)


__all__ = ["DEFAULT_NODE_NAME", "NodeAgent", "ProcessNode", "node_identity"]
