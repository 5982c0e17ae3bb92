"""kopf wiring: indexes, event handlers, settings, and the reconcile workers.

Design: kopf does the watching and caching (four in-memory indexes: runs, their Jobs, those Jobs'
pods, and the Warning Events that say why a Job's pod cannot be created or set up, so a reconcile
never LISTs anything), and every event merely marks a run dirty in a work queue. A few workers
drain the queue through the `Reconciler`. There are no kopf daemons or timers on runs, because
kopf guards those with a finalizer, and a finalizer on a run would wedge its deletion whenever the
operator is down; timers are delayed queue entries instead, and a periodic resync re-queues every
run so a missed event or timer cannot strand one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from extraction_operator.api.constants import ANNOTATION_BREAKERS, GROUP, LABEL_RUN, PLURAL, VERSION
from extraction_operator.metrics import Metrics
from extraction_operator.planner.startup import EVENT_REASONS, pod_start_signature
from extraction_operator.planner.types import StartProblem

from .api import KubeApi
from .kubeclient import connection_info
from .options import OperatorOptions
from .peering import PeeringGate
from .reconcile import ERROR_REQUEUE_SECONDS, Reconciler, RunKey
from .rest import KubeRest
from .workqueue import WorkQueue

logger = logging.getLogger(__name__)

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
KOPF_PREFIX = f"kopf.{GROUP}"
# Events carry no labels to select ours by; every start failure worth reporting is a Warning, and
# Warnings are a small share of a cluster's Events (Scheduled, Pulled, Started... are Normal).
EVENT_FIELD_SELECTOR = "type=Warning"
EventKey = tuple[str, str, str]  # (namespace, involved kind, involved name)
NOT_STARTED: tuple[bool, StartProblem | None] = (False, None)
PAUSED_REQUEUE_SECONDS = 2.0


@dataclass
class OperatorState:
    """Everything the handlers share. One instance per operator (tests embed several)."""

    options: OperatorOptions
    metrics: Metrics
    queue: WorkQueue[RunKey] = field(default_factory=WorkQueue)
    indexed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    reconciler: Reconciler | None = None
    rest: KubeRest | None = None
    runs: Any = None  # kopf.Index[RunKey, body]
    jobs: Any = None  # kopf.Index[RunKey, job]
    pods: Any = None  # kopf.Index[(namespace, job name), pod]
    events: Any = None  # kopf.Index[EventKey, event]
    job_owner: dict[tuple[str, str], RunKey] = field(default_factory=dict)
    pod_job: dict[tuple[str, str], str] = field(default_factory=dict)  # pod -> its Job's name
    # pod uid -> (stage container started, start problem): a pod update that changes this may
    # change its run's plan; other updates (conditions, IPs) cannot.
    pod_starts: dict[str, tuple[bool, StartProblem | None]] = field(default_factory=dict)
    reconciles: int = 0
    stopping: bool = False
    busy: set[asyncio.Task[Any]] = field(default_factory=set)
    gate: PeeringGate | None = None

    def run_phases(self) -> list[str]:
        return list(self.reconciler.phases.values()) if self.reconciler else []


def _controller_run(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if (
            isinstance(ref, Mapping)
            and ref.get("kind") == "ExtractionRun"
            and ref.get("controller")
        ):
            name = ref.get("name")
            return str(name) if name else None
    return None


def _job_name_of_pod(meta: Mapping[str, Any]) -> str | None:
    labels = meta.get("labels") or {}
    for label in JOB_NAME_LABELS:
        if labels.get(label):
            return str(labels[label])
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("kind") == "Job":
            return str(ref.get("name"))
    return None


def _job_event_matters(
    kind: str | None, meta: Mapping[str, Any], status: Mapping[str, Any]
) -> bool:
    """Only a Job appearing, finishing or going away can change a plan; its progress ticks
    (`active`, `ready`) cannot. Anything filtered out here is still seen by the next resync."""
    if kind in (None, "ADDED", "DELETED") or meta.get("deletionTimestamp"):
        return True
    return any(
        isinstance(c, Mapping)
        and c.get("type") in ("Complete", "Failed")
        and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _pod_event_matters(
    kind: str | None, meta: Mapping[str, Any], status: Mapping[str, Any]
) -> bool:
    """Pods matter only for how an attempt ended (exit code, message, eviction)."""
    if kind == "DELETED" or meta.get("deletionTimestamp"):
        return True
    return status.get("phase") in ("Succeeded", "Failed")


def _pod_start_changed(
    starts: dict[str, tuple[bool, StartProblem | None]],
    kind: str | None,
    meta: Mapping[str, Any],
    body: Mapping[str, Any],
) -> bool:
    """Did this pod event change whether the pod started, or why it cannot? (Remembered per pod
    in `starts`.) Such a change may change the run's plan: a cause to show or clear, a stage
    timeout to count from the container's start."""
    uid = str(meta.get("uid") or "")
    if kind == "DELETED":
        starts.pop(uid, None)
        return False
    signature = pod_start_signature(body)
    # A pod first seen on its way to start, with nothing wrong, changes nothing yet.
    changed = starts.get(uid, NOT_STARTED) != signature
    starts[uid] = signature
    return changed


def event_key(namespace: str | None, body: Mapping[str, Any]) -> EventKey | None:
    """Where a Warning Event is kept, or None for one that cannot explain a stage attempt that
    does not start (about another kind of object, or another matter)."""
    involved = body.get("involvedObject")
    if not isinstance(involved, Mapping) or body.get("reason") not in EVENT_REASONS:
        return None
    kind, name = involved.get("kind"), involved.get("name")
    if kind not in ("Job", "Pod") or not isinstance(name, str) or not name:
        return None
    return (namespace or str(involved.get("namespace") or ""), str(kind), name)


def _values(index: Any, key: Any) -> Sequence[Mapping[str, Any]]:
    if index is None or key not in index:
        return ()
    return list(index[key])


def configure_settings(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    """Every kopf knob the operator relies on, set on purpose."""
    # Our own Events carry meaning; kopf's per-log-line Events would flood the API server.
    settings.posting.enabled = False
    # Spec handlers must not fire for breaker writes: stage pods update that annotation often.
    # kopf's own annotations get a prefix of their own: kopf hides every annotation under its
    # storage prefix from the diff, which would also hide `extraction.dev/redrive`.
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX,
        key="last-handled-configuration",
        ignored_fields=[["metadata", "annotations", ANNOTATION_BREAKERS]],
    )
    # kopf's default progress storage writes `status.kopf`, which our structural schema prunes.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"  # unused: no handler needs one
    # Watches: the server closes a stream after ~4.5 minutes; we give up on a silent one after 5
    # (a half-open TCP connection would otherwise stall the operator forever). kopf puts
    # `server_timeout` into the URL as `timeoutSeconds=str(value)`, which the API server parses as
    # an integer: it must be an int (`270.0` gets every watch a 400 Bad Request). The other
    # timeouts below are client-side (aiohttp) and may be floats.
    settings.watching.server_timeout = int(options.watch_server_timeout)
    settings.watching.client_timeout = options.watch_server_timeout + 30
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = options.watch_server_timeout + 30
    settings.watching.reconnect_backoff = 0.5
    # Only our Jobs and pods are watched, filtered by the API server, not in the operator.
    settings.watching.label_selectors["batch", "v1", "jobs"] = LABEL_RUN
    settings.watching.label_selectors["v1", "pods"] = LABEL_RUN
    settings.watching.field_selectors["v1", "events"] = EVENT_FIELD_SELECTOR
    # kopf keeps one worker task per object (run, Job, pod) until it has been idle for
    # `idle_timeout`; past `worker_limit` new objects' events wait for a slot. A limit of 200
    # with a 10 s idle time delayed handoffs by up to 10 s once a burst touched more than 200
    # Jobs and pods (measured by benchmarks/reconciler.py). Workers are small asyncio tasks, so
    # the cap is only a guard against runaway memory, and idle ones retire fast.
    settings.queueing.worker_limit = 10_000
    settings.queueing.idle_timeout = 2.0
    settings.queueing.exit_timeout = 2.0
    settings.networking.request_timeout = 60.0
    settings.networking.connect_timeout = 10.0
    settings.networking.enforce_retry_after = True
    # SIGTERM: stop within the pod's termination grace period (30 s by default).
    settings.process.ultimate_exiting_timeout = options.shutdown_timeout
    if options.peering:
        settings.peering.standalone = False
        settings.peering.name = options.peering
        settings.peering.priority = options.priority
        settings.peering.clusterwide = not options.namespaces
        settings.peering.mandatory = True
        # A dead active replica's record expires after this; the standby takes over then.
        settings.peering.lifetime = options.peering_lifetime
    else:
        settings.peering.standalone = True


def build_registry(state: OperatorState) -> kopf.OperatorRegistry:
    """A fresh registry with all handlers bound to `state` (no global kopf registry)."""
    registry = kopf.OperatorRegistry()
    runs_resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(state.options.client_configuration())

    # Explicit ids: kopf passes each index to handlers as a kwarg named after its handler id.
    @kopf.index(*runs_resource, id="xruns", registry=registry)
    def xruns(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[RunKey, Any]:
        return {(namespace or "", name): dict(body)}

    @kopf.index(
        "batch", "v1", "jobs", id="xrun_jobs", labels={LABEL_RUN: kopf.PRESENT}, registry=registry
    )
    def xrun_jobs(
        namespace: str | None, meta: kopf.Meta, body: kopf.Body, **_: Any
    ) -> dict[RunKey, Any]:
        run = _controller_run(meta)
        if run is None or namespace is None:
            return {}
        state.job_owner[(namespace, str(meta.get("name")))] = (namespace, run)
        return {(namespace, run): dict(body)}

    @kopf.index("v1", "pods", id="xrun_pods", labels={LABEL_RUN: kopf.PRESENT}, registry=registry)
    def xrun_pods(
        namespace: str | None, meta: kopf.Meta, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        job = _job_name_of_pod(meta)
        if job is None:
            return {}
        state.pod_job[(namespace or "", str(meta.get("name")))] = job
        return {(namespace, job): dict(body)}

    @kopf.index("v1", "events", id="xrun_events", registry=registry)
    def xrun_events(namespace: str | None, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        key = event_key(namespace, body)
        return {} if key is None else {key: dict(body)}

    @kopf.on.startup(registry=registry)
    async def startup(**kwargs: Any) -> None:
        # kopf hands the (still empty) indexes to startup handlers; they fill up before any
        # other handler runs, and the workers wait for that (see `_mark`).
        state.runs, state.jobs = kwargs["xruns"], kwargs["xrun_jobs"]
        state.pods, state.events = kwargs["xrun_pods"], kwargs["xrun_events"]
        state.rest = KubeRest(state.options.client_configuration())
        reconciler = Reconciler(
            KubeApi(state.rest), state.metrics, state.options.clock, state.options.instance
        )
        state.reconciler = reconciler
        options = state.options
        state.gate = PeeringGate(
            state.rest if options.peering else None,
            options.peering,
            options.instance,
            options.priority,
            options.clock,
            on_activated=reconciler.reset_caches,
        )
        state.tasks.append(asyncio.create_task(state.gate.run(), name="peering-gate"))
        for index in range(state.options.workers):
            state.tasks.append(asyncio.create_task(_worker(state), name=f"reconcile-{index}"))
        state.tasks.append(asyncio.create_task(_resync(state), name="resync"))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await _drain(state)
        state.queue.close()
        if state.reconciler is not None:
            await state.reconciler.drain_events(grace_seconds=3.0)
        if state.rest is not None:
            await state.rest.close()

    def _mark(namespace: str, name: str) -> None:
        state.indexed.set()  # handlers only run once kopf has filled every index
        state.queue.add((namespace, name))

    def _spec_handler(cause: str) -> None:
        async def handler(namespace: str | None, name: str, **_: Any) -> None:
            state.metrics.spec_handler_calls.labels(cause).inc()
            _mark(namespace or "", name)

        decorator = {"create": kopf.on.create, "update": kopf.on.update, "resume": kopf.on.resume}
        decorator[cause](*runs_resource, id=f"spec-{cause}", registry=registry)(handler)

    for cause in ("create", "update", "resume"):
        _spec_handler(cause)

    @kopf.on.event(*runs_resource, registry=registry)
    async def run_event(namespace: str | None, name: str, type: str, **_: Any) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            state.queue.forget(key)
            if state.reconciler is not None:
                state.reconciler.forget(key)
            return
        _mark(*key)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN: kopf.PRESENT}, registry=registry)
    async def job_event(
        namespace: str | None, meta: kopf.Meta, status: kopf.Status, type: str, **_: Any
    ) -> None:
        run = _controller_run(meta)
        if run is not None and namespace is not None and _job_event_matters(type, meta, status):
            _mark(namespace, run)
        if type == "DELETED":
            state.job_owner.pop((namespace or "", str(meta.get("name"))), None)

    @kopf.on.event("v1", "pods", labels={LABEL_RUN: kopf.PRESENT}, registry=registry)
    async def pod_event(
        namespace: str | None,
        meta: kopf.Meta,
        status: kopf.Status,
        body: kopf.Body,
        type: str,
        **_: Any,
    ) -> None:
        if type == "DELETED":
            state.pod_job.pop((namespace or "", str(meta.get("name"))), None)
        changed = _pod_start_changed(state.pod_starts, type, meta, body)
        if not (changed or _pod_event_matters(type, meta, status)):
            return
        job = _job_name_of_pod(meta)
        owner = state.job_owner.get((namespace or "", job)) if job else None
        if owner is not None:
            _mark(*owner)

    @kopf.on.event("v1", "events", registry=registry)
    async def warning_event(namespace: str | None, body: kopf.Body, type: str, **_: Any) -> None:
        """A Warning about one of our Jobs or its pods wakes the run: the Job controller's
        `FailedCreate` is the only place a pod that cannot be created is explained."""
        key = event_key(namespace, body)
        if key is None or type == "DELETED":
            return
        event_namespace, kind, name = key
        job = name if kind == "Job" else state.pod_job.get((event_namespace, name))
        owner = state.job_owner.get((event_namespace, job)) if job else None
        if owner is not None:
            _mark(*owner)

    @kopf.on.probe(id="reconcile_queue", registry=registry)
    def queue_depth(**_: Any) -> int:
        return len(state.queue)

    return registry


async def _worker(state: OperatorState) -> None:
    await state.indexed.wait()
    task = asyncio.current_task()
    assert task is not None
    while not state.stopping:
        key = await state.queue.get()
        state.busy.add(task)
        try:
            await _reconcile_one(state, key)
        finally:
            state.busy.discard(task)
            state.queue.done(key)


async def _drain(state: OperatorState) -> None:
    """Graceful stop: idle workers stop now; a worker in the middle of a pass finishes it (its
    Job creates and status write land) unless that takes longer than the drain timeout. A pass
    cut short is harmless anyway (Jobs first, then a CAS status write), just wasteful."""
    state.stopping = True
    for task in state.tasks:
        if task not in state.busy:
            task.cancel()
    busy = [task for task in state.tasks if task in state.busy]
    if busy:
        logger.info("Waiting for %d reconcile pass(es) to finish before exiting", len(busy))
        _, pending = await asyncio.wait(busy, timeout=state.options.drain_seconds)
        for task in pending:
            task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)


async def _reconcile_one(state: OperatorState, key: RunKey) -> None:
    assert state.reconciler is not None
    if state.gate is not None and not state.gate.active:
        # Paused in favour of another replica: look again later, act only once active.
        state.queue.add_after(key, PAUSED_REQUEUE_SECONDS)
        return
    bodies = _values(state.runs, key)
    if not bodies:
        state.reconciler.forget(key)
        return
    started = time.perf_counter()
    try:
        result = await state.reconciler.reconcile(
            key,
            bodies[-1],
            _values(state.jobs, key),
            lambda job: _values(state.pods, (key[0], job)),
            lambda kind, name: _values(state.events, (key[0], kind, name)),
        )
    except asyncio.CancelledError:
        raise
    except Exception as error:
        state.metrics.reconcile_errors.labels(type(error).__name__).inc()
        logger.exception("Reconcile of %s/%s failed; retrying in %ss", *key, ERROR_REQUEUE_SECONDS)
        state.queue.add_after(key, ERROR_REQUEUE_SECONDS)
        return
    finally:
        state.metrics.reconcile_duration.observe(time.perf_counter() - started)
        state.reconciles += 1
    if result.requeue_after is not None:
        state.queue.add_after(key, result.requeue_after)


async def _resync(state: OperatorState) -> None:
    """Re-queue every known run periodically: the safety net under missed events and timers."""
    await state.indexed.wait()
    while True:
        await asyncio.sleep(state.options.resync_seconds)
        if state.runs is None:
            continue
        for key in list(state.runs.keys()):
            state.queue.add(key)
