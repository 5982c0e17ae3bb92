"""The job runner: the local cluster's Job controller and its only node's kubelet, in one loop.

It is a plain API client (list, watch, create, patch `/status`, delete), so it runs against the
local emulator or any API server. Jobs and Pods of all namespaces are mirrored by watch caches;
every change, and a short periodic tick for deadlines and grace periods, triggers one pass that
first lets the kubelet start/stop/report pods (`kubelet.py`), then applies the Job controller's
pure decisions (`jobcontroller.py`). Passes are serial and recompute everything from the caches,
so a dropped watch, a failed write or a restart of the runner converges instead of losing or
duplicating work: a Pod the runner creates is put into its cache from the create response before
the next pass, so a Job never gets a second pod because a watch event was late.

Node mode (`job_controller=False`): against a real control plane the real Job controller and
scheduler do their jobs, so the runner is just the kubelet of one node: it watches only the pods
bound to it (`fieldSelector=spec.nodeName=<node>`, the one pod list the Node authorizer grants a
node), runs nothing else, and leaves Jobs alone. `localcluster.node.ProcessNode` runs it that way,
next to the node's heartbeats and a volume provisioner.

Fault injection for tests (`kill`, `evict`, `pause`, `resume`, `running_pods`, `logs`) are plain
methods that are safe to call from any thread: off the runner's loop they hop onto it and wait.
`pause()` models a node outage: no pod starts, stops or reports status until `resume()`, while
already running processes keep running (they are not frozen) and the Job controller, which lives
in the control plane, keeps working.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal as signals
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from .aio import wait_event, within
from .jobcontroller import (
    controller_uid,
    is_finished_pod,
    phase_of,
    plan_job,
    pod_for_job,
    status_patch,
)
from .kubeapi import JOBS, MERGE_PATCH, PODS, ApiClient, ApiError
from .kubelet import RESTART_BACKOFF, Kubelet
from .podsetup import PodSetup
from .podspec import JSON
from .watchcache import WatchCache

log = logging.getLogger(__name__)

T = TypeVar("T")
JOB_STATUS_KEYS = ("active", "succeeded", "failed", "ready", "startTime", "completionTime",
                   "conditions")  # fmt: skip


class JobRunner:
    """Acts as the Job controller and the kubelet of one node against the API at `api`.

    `api` is a URL (a plain-HTTP server: the emulator) or an `ApiClient` carrying its own
    credentials (which the caller keeps and closes). `grace_seconds_cap` bounds every termination
    grace period (tests use a few seconds instead of the default 30); `tick_seconds` is how often
    deadlines are checked without any event; `request_timeout` bounds every API call (a hung
    request must not stall the node). `job_controller=False` is node mode (module docstring);
    `setup` is how pods get volumes and credentials (the emulator's way by default);
    `restart_backoff` (first delay, cap) paces restarts in place, which only node mode does.
    """

    def __init__(
        self,
        api: str | ApiClient,
        workdir: Path,
        *,
        node_name: str = "localcluster-node",
        grace_seconds_cap: float | None = None,
        tick_seconds: float = 0.25,
        request_timeout: float = 5.0,
        config_errors_fail_pods: bool = False,
        job_controller: bool = True,
        setup: PodSetup | None = None,
        restart_backoff: tuple[float, float] = RESTART_BACKOFF,
    ) -> None:
        self._given_client = api if isinstance(api, ApiClient) else None
        self.api_url = api.url if isinstance(api, ApiClient) else api
        self.job_controller = job_controller
        self._setup = setup
        self._restart_backoff = restart_backoff
        self.workdir = Path(workdir)
        self.node_name = node_name
        self._grace_cap = grace_seconds_cap
        self._tick = tick_seconds
        self._request_timeout = request_timeout
        self._config_errors_fail = config_errors_fail_pods
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_event: asyncio.Event | None = None
        # job uid -> {pod uid: final phase} of its pods that were deleted (active ones: Failed)
        self._gone: dict[str, dict[str, str]] = {}
        self._expected_deletions: set[str] = set()  # pods we deleted on purpose (suspend)
        self._client: ApiClient | None = None
        self._jobs: WatchCache | None = None
        self._pods: WatchCache | None = None
        self._kubelet: Kubelet | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, sync_timeout: float = 30.0) -> None:
        """Start watching and running; returns once both caches hold a full list."""
        if self._loop is not None:
            raise RuntimeError("JobRunner.start() called twice")
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self.workdir.mkdir(parents=True, exist_ok=True)
        client = self._client = self._given_client or ApiClient(
            self.api_url, timeout=self._request_timeout
        )
        selector = (
            {} if self.job_controller else {"fieldSelector": f"spec.nodeName={self.node_name}"}
        )
        self._pods = WatchCache(client, PODS.path(), self._on_pod_change, params=selector)
        self._kubelet = Kubelet(
            client,
            self._pods,
            self.workdir,
            node_name=self.node_name,
            grace_seconds_cap=self._grace_cap,
            wake=self._wake,
            config_errors_fail_pods=self._config_errors_fail,
            bound_only=not self.job_controller,
            setup=self._setup,
            restart_backoff=self._restart_backoff,
        )
        self._tasks = [
            asyncio.create_task(self._pods.run(), name="jobrunner-pods-watch"),
            asyncio.create_task(self._reconcile_forever(), name="jobrunner-reconcile"),
        ]
        caches = [self._pods]
        if self.job_controller:
            self._jobs = WatchCache(client, JOBS.path(), self._on_job_change)
            caches.append(self._jobs)
            self._tasks.append(asyncio.create_task(self._jobs.run(), name="jobrunner-jobs-watch"))
        try:
            await within(asyncio.gather(*(cache.synced.wait() for cache in caches)), sync_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(
                f"job runner could not list Jobs and Pods from {self.api_url}"
            ) from None

    async def stop(self) -> None:
        """Stop watching and kill every stage process (and their children)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._kubelet is not None:
            await self._kubelet.shutdown()
        if self._client is not None and self._given_client is None:
            await self._client.close()
        self._loop = None

    async def __aenter__(self) -> JobRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- fault injection and inspection (thread-safe) ------------------------------------------

    def kill(self, namespace: str, pod_name: str, signal: int = signals.SIGKILL) -> bool:
        """Send `signal` to a running stage process group; the pod then fails with 128+signal."""

        def act() -> bool:
            run = self._node.find(namespace, pod_name)
            return run is not None and run.process is not None and run.process.signal_group(signal)

        return self._call(act)

    def evict(self, namespace: str, pod_name: str) -> bool:
        """Evict a running pod: kill its process, fail it with reason `Evicted`."""
        return self._call(lambda: self._node.evict(namespace, pod_name))

    def pause(self) -> None:
        """Node outage: start, stop and report nothing until `resume()`."""

        def act() -> None:
            self._node.paused = True

        self._call(act)

    def resume(self) -> None:
        def act() -> None:
            self._node.paused = False
            self._wake()

        self._call(act)

    @property
    def paused(self) -> bool:
        return self._kubelet is not None and self._kubelet.paused

    def running_pods(self) -> list[tuple[str, str]]:
        """(namespace, name) of every pod whose process is running right now."""
        return self._call(self._node.running_pods)

    def pid_of(self, namespace: str, pod_name: str) -> int | None:
        """The process id of a pod's process (None if it never started here)."""

        def act() -> int | None:
            run = self._node.find(namespace, pod_name)
            return run.process.pid if run is not None and run.process is not None else None

        return self._call(act)

    def logs(self, namespace: str, pod_name: str) -> str:
        """The combined stdout and stderr of a pod's process so far."""
        return self._call(lambda: self._node.logs(namespace, pod_name))

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the job runner is not running")
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    @property
    def _node(self) -> Kubelet:
        if self._kubelet is None:
            raise RuntimeError("the job runner is not running")
        return self._kubelet

    # ---- the loop ------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_event is not None:
            self._wake_event.set()

    def _on_job_change(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        self._wake()

    def _on_pod_change(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        self._wake()
        if kind != "DELETED" or old is None:
            return
        self._node.pod_gone(old)
        if not self.job_controller:
            return
        uid = str((old.get("metadata") or {}).get("uid") or "")
        job_uid = controller_uid(old)
        if uid in self._expected_deletions:
            self._expected_deletions.discard(uid)
        elif job_uid:
            phase = phase_of(old) if is_finished_pod(old) else "Failed"
            self._gone.setdefault(job_uid, {})[uid] = phase

    async def _reconcile_forever(self) -> None:
        assert self._wake_event is not None
        assert self._pods is not None
        while True:
            await wait_event(self._wake_event, self._tick)
            self._wake_event.clear()
            jobs_synced = self._jobs is None or self._jobs.synced.is_set()
            if not (jobs_synced and self._pods.synced.is_set()):
                continue
            try:
                if not self._node.paused:
                    await self._node.sync()
                if self._jobs is not None:
                    await self._sync_jobs()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job runner pass failed; retrying")

    async def _sync_jobs(self) -> None:
        assert self._jobs is not None
        assert self._pods is not None
        by_job: dict[str, list[JSON]] = {}
        for pod in self._pods.objects.values():
            uid = controller_uid(pod)
            if uid:
                by_job.setdefault(uid, []).append(pod)
        live = set()
        for job in list(self._jobs.objects.values()):
            meta = job.get("metadata") or {}
            uid = str(meta.get("uid") or "")
            live.add(uid)
            if not uid or meta.get("deletionTimestamp"):
                continue
            try:
                await self._sync_job(job, by_job.get(uid, []))
            except ApiError as exc:
                log.debug("job %s: %s", meta.get("name"), exc)
            except Exception:
                log.exception("job %s/%s: sync failed", meta.get("namespace"), meta.get("name"))
        for uid in set(self._gone) - live:
            del self._gone[uid]

    async def _sync_job(self, job: JSON, pods: list[JSON]) -> None:
        assert self._client is not None
        assert self._jobs is not None
        meta = job["metadata"]
        uid = str(meta["uid"])
        now = datetime.now(UTC)
        # Pods deleted because the Job was suspended neither run nor count as failures.
        counted = [p for p in pods if str(p["metadata"].get("uid")) not in self._expected_deletions]
        plan = plan_job(job, counted, now, gone=self._gone.get(uid))
        for pod in plan.delete:
            pmeta = pod.get("metadata") or {}
            self._expected_deletions.add(str(pmeta.get("uid")))
            try:
                await self._client.delete(PODS.path(pmeta.get("namespace"), pmeta.get("name")))
            except ApiError as exc:
                if not exc.not_found:
                    raise
        for pod, reason, message in plan.kill:
            self._node.request_stop(pod, reason, message)
        known = len(pods) + len(self._gone.get(uid, {}))
        for offset in range(plan.create_pods):
            await self._create_pod(job, known + offset)
        current = job.get("status") or {}
        owned = {key: current[key] for key in JOB_STATUS_KEYS if key in current}
        patch = status_patch(owned, plan.status)
        if patch is None:
            return
        path = JOBS.path(meta.get("namespace"), meta.get("name"), "status")
        try:
            updated = await self._client.patch(path, {"status": patch}, MERGE_PATCH)
        except ApiError as exc:
            if exc.conflict:
                fresh = await self._client.get(JOBS.path(meta.get("namespace"), meta.get("name")))
                self._jobs.remember(fresh)
                return
            raise
        self._jobs.remember(updated)

    async def _create_pod(self, job: JSON, index: int) -> None:
        """Create the Job's `index`-th pod (see `pod_suffix`): on `409 AlreadyExists`, a pod of
        this Job that the cache does not know yet is our own earlier create whose answer was lost,
        so it is adopted; a known pod means the index is taken and the next one is tried."""
        assert self._client is not None
        assert self._pods is not None
        job_uid = str(job["metadata"]["uid"])
        for attempt in range(index, index + 20):
            body = pod_for_job(job, self.node_name, attempt)
            namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
            try:
                created = await self._client.create(PODS.path(namespace), body)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                existing = await self._client.get(PODS.path(namespace, name))
                if (namespace, name) in self._pods.objects or controller_uid(existing) != job_uid:
                    continue
                created = existing
            self._pods.remember(created)
            log.info(
                "job %s: created pod %s", job["metadata"].get("name"), body["metadata"]["name"]
            )
            return
