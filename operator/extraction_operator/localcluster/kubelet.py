"""The kubelet half of the job runner: run pods as local processes and report their status.

A pod is this node's to run when its `spec.nodeName` is empty or names this node and its
`restartPolicy` is `Never` or `OnFailure` (OnFailure is treated as Never: a failed process is not
restarted in place; the emulated Job controller replaces the pod instead). As the node of a real
cluster (`bound_only`), a pod is this node's exactly when the scheduler bound it here
(`spec.nodeName`), whatever its `restartPolicy`, and the policy is honoured as a kubelet does:
`Always` restarts an exited process, `OnFailure` one that failed, in place, after a back-off
(10 s doubling to 5 min by default, `restart_backoff`) during which the container waits in
`CrashLoopBackOff` with its previous run as `lastState` and the pod stays `Running`; the real
Job controller counts such restarts itself. Probes are not run: a running process is ready.
Everything is level-triggered: each pass
looks at every cached pod, starts what should run, stops what should stop, and writes the status
only when it differs from what the server holds, so a dropped write is simply redone.

Deletion: a pod with a `deletionTimestamp` (a real API server's graceful delete) or one that
vanished (a server that deletes at once) gets SIGTERM on its process group and SIGKILL after
`terminationGracePeriodSeconds` (default 30, capped by the runner's `grace_seconds_cap`); a
gracefully deleted pod then gets its final status and is removed with `gracePeriodSeconds: 0`
and a uid precondition (never a newer pod of the same name), as a kubelet confirms a deletion.
Finalizers (the Job controller's `batch.kubernetes.io/job-tracking`) are left to their owners.

Volumes, credentials and in-cluster env are the `PodSetup`'s business (`podsetup.py`): the
emulator's by default, `nodesetup.NodePodSetup` on a real cluster.

Missing secrets or config maps keep the pod `Pending` with a `CreateContainerConfigError`
waiting state and are retried every second, as on a real node (set `config_errors_fail_pods` to
fail such pods at once instead). A pod that can never run here (no `command`, program not found)
fails with a `StartError` container state, exit code 128, like a runtime that cannot exec; the
check runs before the process starts (`runtimechecks.py`), since inside the node's mount-namespace
wrapper a failed exec would look like an ordinary exit 127. An image reference that cannot be
parsed keeps the pod waiting with `InvalidImageName`, as a kubelet does.

A pod found `Running` that this runner instance never started (the runner restarted and its
processes died with it) is failed with pod reason `NodeLost` and container reason
`ContainerStatusUnknown` (exit code 137), the kubelet's wording for a vanished container.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .aio import within
from .jobcontroller import POD_DEADLINE_MESSAGE, is_finished_pod, timestamp
from .kubeapi import CONFIGMAPS, PODS, SECRETS, ApiClient, ApiError
from .podsetup import LocalPodSetup, PodSetup
from .podspec import (
    JSON,
    PodConfigError,
    PodPaths,
    PodSpecError,
    SourceKey,
    build_launch,
    decode_source,
    first_container,
    referenced_sources,
)
from .podstatus import PodRun, keep_server_fields, pod_status, status_differs, status_update
from .processes import StageProcess, exit_code_of, log_tail, read_termination_message
from .runtimechecks import exec_problem, image_problem
from .watchcache import WatchCache

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30.0
EVICTION_MESSAGE = "The node was low on resource: memory (evicted by fault injection)."
LOST_MESSAGE = "The job runner restarted while this pod's process ran; the process was lost."
CONFIG_RETRY_SECONDS = 1.0
RUNNABLE_POLICIES = ("Never", "OnFailure")
RESTART_BACKOFF = (10.0, 300.0)  # the kubelet's: first delay, cap


def _now() -> datetime:
    return datetime.now(UTC)


def _seconds_since(moment: datetime) -> float:
    return (_now() - moment).total_seconds()


class Kubelet:
    """Runs the pods of one node; driven by `sync()` passes from the job runner's loop."""

    def __init__(
        self,
        client: ApiClient,
        pods: WatchCache,
        workdir: Path,
        *,
        node_name: str,
        grace_seconds_cap: float | None,
        wake: Callable[[], None],
        config_errors_fail_pods: bool = False,
        bound_only: bool = False,
        setup: PodSetup | None = None,
        restart_backoff: tuple[float, float] = RESTART_BACKOFF,
    ) -> None:
        self.client = client
        self.bound_only = bound_only
        self.restart_backoff = restart_backoff
        self.setup: PodSetup = setup if setup is not None else LocalPodSetup(client.url)
        self.pods = pods
        self.workdir = workdir
        self.node_name = node_name
        self.grace_seconds_cap = grace_seconds_cap
        self.config_errors_fail_pods = config_errors_fail_pods
        self.paused = False  # node outage: sync() is not called, request_stop() only records
        self.runs: dict[str, PodRun] = {}
        self._by_name: dict[tuple[str, str], PodRun] = {}
        self._finalized: set[str] = set()
        self._tasks: set[asyncio.Task[object]] = set()
        self._wake = wake

    # ---- what the job runner and the fault API call -------------------------------------------

    def owns(self, pod: JSON) -> bool:
        """Whether this node runs the pod (see the module docstring)."""
        uid = (pod.get("metadata") or {}).get("uid")
        if uid in self.runs:
            return True
        spec = pod.get("spec") or {}
        if self.bound_only:
            return bool(spec.get("nodeName")) and spec.get("nodeName") == self.node_name
        return (
            spec.get("nodeName") in (None, "", self.node_name)
            and spec.get("restartPolicy") in RUNNABLE_POLICIES
        )

    def pod_gone(self, pod: JSON) -> None:
        """The pod object was deleted from the server."""
        run = self.runs.get(str((pod.get("metadata") or {}).get("uid")))
        if run is not None:
            run.deleted = True

    def request_stop(self, pod: JSON, reason: str, message: str) -> None:
        """Stop a pod's process and fail the pod (the Job controller's deadline or limit)."""
        if not self.owns(pod) or is_finished_pod(pod):
            return
        run = self.runs.get(str((pod.get("metadata") or {}).get("uid")))
        if run is None:
            run = self._accept(pod)
            run.finished_at = _now()
        if run.finished:
            return
        if reason and not run.pod_reason:
            run.pod_reason, run.pod_message = reason, message
        run.stop_pending = True
        if not self.paused:  # a node that is out cannot act; it stops the pod when it is back
            self._terminate(run, self._grace(run.pod))

    def find(self, namespace: str, name: str) -> PodRun | None:
        return self._by_name.get((namespace, name))

    def evict(self, namespace: str, name: str) -> bool:
        run = self.find(namespace, name)
        if run is None or not run.running:
            return False
        run.pod_reason, run.pod_message = "Evicted", EVICTION_MESSAGE
        self._terminate(run, self._grace(run.pod))
        return True

    def running_pods(self) -> list[tuple[str, str]]:
        return sorted((r.namespace, r.name) for r in self.runs.values() if r.running)

    def logs(self, namespace: str, name: str) -> str:
        run = self.find(namespace, name)
        if run is None:
            raise KeyError(f"no pod {namespace}/{name} has run on this node")
        try:
            return run.paths.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def shutdown(self) -> None:
        """Kill every process group at once and wait for them: nothing outlives the runner."""
        for run in self.runs.values():
            if run.process is not None and run.running:
                run.process.signal_group(signal.SIGKILL)
        waiting = [run for run in self.runs.values() if run.process is not None and run.running]

        async def reap(run: PodRun) -> None:
            assert run.process is not None
            try:
                await within(run.process.wait(), 5)
            except (TimeoutError, ProcessLookupError):
                log.warning("process of pod %s/%s did not die", run.namespace, run.name)

        await asyncio.gather(*(reap(run) for run in waiting))  # at most 5 s in all
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- one reconcile pass ------------------------------------------------------------------

    async def sync(self) -> None:
        for pod in list(self.pods.objects.values()):
            try:
                await self._sync_pod(pod)
            except Exception:
                meta = pod.get("metadata") or {}
                log.exception("pod %s/%s: sync failed", meta.get("namespace"), meta.get("name"))
        for uid, run in list(self.runs.items()):
            if run.deleted:
                if run.running:
                    self._terminate(run, self._grace(run.pod))
                else:
                    del self.runs[uid]
                    self.setup.release(run)
            elif run.running:
                try:
                    await self.setup.refresh(run)
                except Exception:
                    log.exception("pod %s/%s: refresh failed", run.namespace, run.name)

    async def _sync_pod(self, pod: JSON) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid or not self.owns(pod):
            return
        run = self.runs.get(uid)
        if meta.get("deletionTimestamp"):
            await self._sync_deleting(pod, run)
            return
        if run is None:
            if is_finished_pod(pod):
                return
            run = self._accept(pod)
            if (pod.get("status") or {}).get("phase") == "Running":
                run.lost, run.finished_at = True, _now()
                run.pod_reason, run.pod_message = "NodeLost", LOST_MESSAGE
        run.pod = pod
        if run.stop_pending:
            self._terminate(run, self._grace(pod))
        elif run.process is None and not run.finished and time.monotonic() >= run.config_retry_at:
            await self._start(run)
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        overdue = isinstance(deadline, int) and _seconds_since(run.accepted_at) >= deadline
        if (run.running or run.restart_count) and overdue and not run.pod_reason:
            run.pod_reason, run.pod_message = "DeadlineExceeded", POD_DEADLINE_MESSAGE
            self._terminate(run, self._grace(pod))
        await self._report(run, pod)

    async def _sync_deleting(self, pod: JSON, run: PodRun | None) -> None:
        if run is not None and run.running:
            self._terminate(run, self._grace(pod, deleting=True))
            return
        if run is not None and not run.reported_final and run.process is not None:
            await self._report(run, pod)
        uid = str((pod.get("metadata") or {}).get("uid"))
        if uid in self._finalized:
            return
        self._finalized.add(uid)
        meta = pod.get("metadata") or {}
        try:
            await self.client.delete(PODS.path(meta.get("namespace"), meta.get("name")), 0, uid=uid)
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):  # gone, or a newer pod holds the name
                self._finalized.discard(uid)
                log.debug("pod %s: final delete failed: %s", meta.get("name"), exc)

    # ---- starting and stopping -----------------------------------------------------------------

    def _accept(self, pod: JSON) -> PodRun:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name"))
        uid = str(meta.get("uid"))
        root = self.workdir / "pods" / namespace / f"{name}-{uid[:8]}"
        paths = PodPaths(root=root, volumes_root=self.workdir / "volumes")
        run = PodRun(uid, namespace, name, paths, pod, accepted_at=_now())
        self.runs[uid] = run
        self._by_name[(namespace, name)] = run
        return run

    async def _fetch_sources(self, namespace: str, keys: set[SourceKey]) -> dict[SourceKey, JSON]:
        found: dict[SourceKey, JSON] = {}
        for kind, name in sorted(keys):
            resource = SECRETS if kind == "secret" else CONFIGMAPS
            try:
                obj = await self.client.get(resource.path(namespace, name))
            except ApiError as exc:
                if exc.not_found:
                    continue
                raise
            found[(kind, name)] = obj
        return found

    async def _start(self, run: PodRun) -> None:
        pod = run.pod
        bad_image = image_problem(first_container(pod).get("image"))
        if bad_image is not None:
            # The kubelet keeps such a pod waiting (the image is mutable); so does this node.
            run.waiting_reason, run.waiting_message = "InvalidImageName", bad_image
            run.config_retry_at = time.monotonic() + CONFIG_RETRY_SECONDS
            return
        try:
            keys = referenced_sources(first_container(pod))
            objects = await self._fetch_sources(run.namespace, keys)
            sources = {key: decode_source(key[0], objects[key]) if key in objects else None
                       for key in keys}  # fmt: skip
            prepared = await self.setup.prepare(run)
            launch = build_launch(
                pod, run.paths, sources, node_name=self.node_name, base_env=dict(os.environ),
                volume_dirs=prepared.volume_dirs, extra_env=prepared.env,
            )  # fmt: skip
        except PodSpecError as exc:
            run.start_error, run.finished_at = str(exc), _now()
            return
        except PodConfigError as exc:
            if self.config_errors_fail_pods:
                run.start_error, run.finished_at = f"CreateContainerConfigError: {exc}", _now()
                return
            run.waiting_reason, run.waiting_message = "CreateContainerConfigError", str(exc)
            run.config_retry_at = time.monotonic() + CONFIG_RETRY_SECONDS
            return
        except ApiError as exc:
            log.debug("pod %s: cannot read its config or volumes yet: %s", run.name, exc)
            run.config_retry_at = time.monotonic() + CONFIG_RETRY_SECONDS
            return
        for directory in launch.host_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        cannot_exec = exec_problem(launch.argv[0], launch.env.get("PATH", ""), launch.cwd)
        if cannot_exec is not None:
            run.start_error, run.finished_at = cannot_exec, _now()
            return
        run.paths.kubeconfig.write_text(prepared.kubeconfig)
        run.paths.termination_message.write_bytes(b"")
        try:
            run.process = await StageProcess.start(
                self.setup.command(launch), env=launch.env, cwd=launch.cwd, log_path=run.paths.log
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            run.start_error = f"failed to start {launch.argv[0]!r}: {reason}"
            run.finished_at = _now()
            return
        run.started_at = _now()
        run.waiting_reason, run.waiting_message = "", ""
        log.info("pod %s/%s: started pid %d", run.namespace, run.name, run.process.pid)
        self._spawn(self._await_exit(run, run.process))

    async def _await_exit(self, run: PodRun, process: StageProcess) -> None:
        code = exit_code_of(await process.wait())
        message = read_termination_message(run.paths.termination_message)
        container = first_container(run.pod)
        policy = container.get("terminationMessagePolicy")
        if not message.strip() and code != 0 and policy == "FallbackToLogsOnError":
            message = log_tail(run.paths.log)
        run.termination_message = message
        run.exit_code, run.finished_at = code, _now()
        self.setup.release(run)
        log.info("pod %s/%s: exited with %d", run.namespace, run.name, code)
        if self._restarts(run, code):
            self._schedule_restart(run, process, code)
        self._wake()

    def _restarts(self, run: PodRun, code: int) -> bool:
        """Whether the exited process is restarted in place (see the module docstring)."""
        if not self.bound_only or run.kill_requested or run.deleted or run.pod_reason:
            return False
        policy = (run.pod.get("spec") or {}).get("restartPolicy") or "Always"
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def _schedule_restart(self, run: PodRun, process: StageProcess, code: int) -> None:
        run.last_terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": timestamp(run.started_at or run.accepted_at),
            "finishedAt": timestamp(run.finished_at or _now()),
            "containerID": f"local://{process.pid}",
        }
        if run.termination_message:
            run.last_terminated["message"] = run.termination_message
        first, cap = self.restart_backoff
        delay = min(first * 2**run.restart_count, cap)
        run.restart_count += 1
        run.process, run.exit_code, run.started_at, run.finished_at = None, None, None, None
        run.termination_message = ""
        container = str(first_container(run.pod).get("name") or "main")
        run.waiting_reason = "CrashLoopBackOff"
        run.waiting_message = (f"back-off {delay:g}s restarting failed container={container} "
                               f"pod={run.name}_{run.namespace}({run.uid})")  # fmt: skip
        run.config_retry_at = time.monotonic() + delay

    def _grace(self, pod: JSON, *, deleting: bool = False) -> float:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        value = meta.get("deletionGracePeriodSeconds") if deleting else None
        if not isinstance(value, int):
            value = spec.get("terminationGracePeriodSeconds")
        grace = float(value) if isinstance(value, int) and value >= 0 else DEFAULT_GRACE_SECONDS
        cap = self.grace_seconds_cap
        return min(grace, cap) if cap is not None else grace

    def _terminate(self, run: PodRun, grace: float) -> None:
        if run.kill_requested:
            return
        run.kill_requested = True
        if run.process is not None and run.running:
            self._spawn(run.process.terminate(grace))
        self._wake()

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- reporting ---------------------------------------------------------------------------

    async def _report(self, run: PodRun, pod: JSON) -> None:
        if run.reported_final or run.deleted:
            return
        current = pod.get("status") or {}
        desired = keep_server_fields(current, pod_status(run))
        if status_differs(current, desired):
            path = PODS.path(run.namespace, run.name, "status")
            # The patch replaces whole lists (conditions), so it must be computed from the
            # latest pod: the resourceVersion makes a stale base a 409, refetched just below.
            body: JSON = {"status": status_update(current, desired)}
            version = (pod.get("metadata") or {}).get("resourceVersion")
            if version:
                body["metadata"] = {"resourceVersion": version}
            try:
                updated = await self.client.patch(path, body)
            except ApiError as exc:
                if exc.not_found:
                    run.deleted = True
                elif exc.conflict:
                    self.pods.remember(await self.client.get(PODS.path(run.namespace, run.name)))
                else:
                    log.debug("pod %s: status write failed: %s", run.name, exc)
                return
            self.pods.remember(updated)
        if desired["phase"] in ("Succeeded", "Failed"):
            run.reported_final = True
