"""One reconcile pass: snapshot what exists, ask the pure planner, carry out its plan.

Ordering is what makes crashes harmless:
1. Jobs are created first, with deterministic names; a crash before the status write leaves a Job
   that the next pass adopts (the planner trusts observed Jobs over status for attempt numbers).
2. Status is then replaced with a compare-and-swap on resourceVersion; losing the race means
   someone else wrote meanwhile, so this pass's plan is dropped and the run is planned again.
3. Events are posted only after the status write landed, so a re-planned pass never repeats them.

A lost race is common and harmless: kopf patches its own annotations onto a new or changed run
(bumping its resourceVersion) while the first pass is in flight, and stage pods write the breaker
annotation. The Jobs the dropped pass created exist, though, and the next pass sees them newer
than the status. The reconciler remembers the Jobs it created itself until a status write records
them (`_launched`) and tells the planner, so such a Job is reported as the launch it was; only a
Job some other (earlier, crashed) operator process created is reported as adopted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from extraction_operator.api.constants import ANNOTATION_LAUNCHED_BY, ANNOTATION_REDRIVE
from extraction_operator.breaker.report import circuits_line
from extraction_operator.metrics import Metrics
from extraction_operator.planner import (
    BreakerAccess,
    ObservedJob,
    Plan,
    RunSnapshot,
    awaits_pod_facts,
    observe_job,
    plan_run,
)
from extraction_operator.planner.timefmt import parse_time

from .access import BreakerAccessChecker, breaker_identity
from .api import JobNameTaken, KubeApi, owned_by
from .circuits import CircuitTracker, as_mapping
from .crashpoints import crash_point
from .stagerbac import StageGrants

logger = logging.getLogger(__name__)

RunKey = tuple[str, str]
JSON = dict[str, Any]

# After a Job fails, its pod's termination state may reach our cache a moment later than the Job
# itself (separate watch streams). Waiting this long before accounting the failure keeps the exit
# code and message, which decide whether the failure is retryable. Not for a deadline failure:
# its pods are deleted by the Job controller and never report (`planner.awaits_pod_facts`).
POD_INFO_GRACE_SECONDS = 5.0
# A created Job is kept in memory until the watch shows it, so the next pass cannot mistake a
# just-created Job for a lost one.
RECENT_JOB_TTL_SECONDS = 120.0
CONFLICT_REQUEUE_SECONDS = 0.2
SHELL_STATUS_FIELDS = ("circuits", "circuitSummary", "reconciledBy")
CREATE_CONCURRENCY = 8
TERMINAL_PHASES = ("Succeeded", "Failed")
ERROR_REQUEUE_SECONDS = 5.0


# (involved kind, involved name) -> the Warning Events about that Job or pod (see handlers.py).
EventsOf = Callable[[str, str], Sequence[Mapping[str, Any]]]


def _no_events(kind: str, name: str) -> Sequence[Mapping[str, Any]]:
    return ()


@dataclasses.dataclass
class ReconcileResult:
    requeue_after: float | None
    wrote_status: bool = False


class Reconciler:
    """Stateful shell around the pure planner; its memory is only a cache of its own writes."""

    def __init__(
        self,
        api: KubeApi,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        instance: str = "extraction-operator",
    ) -> None:
        self.api = api
        self.instance = instance
        self.metrics = metrics
        self.clock = clock
        self.circuits = CircuitTracker(metrics, self._post_event, clock)
        self.access = BreakerAccessChecker(api)
        self.grants = StageGrants(api)
        # run key -> (resourceVersion our write superseded, the body the write returned)
        self._written: dict[RunKey, tuple[str, JSON]] = {}
        # run key -> job name -> (monotonic time created, job body)
        self._recent_jobs: dict[RunKey, dict[str, tuple[float, JSON]]] = {}
        # run key -> names of Jobs this process created that no landed status write records yet
        self._launched: dict[RunKey, set[str]] = {}
        # Stamped on every Job this process creates (instance plus a per-process nonce, since a
        # restarted container keeps its pod name): see `KubeApi.create_job`.
        self.launch_token = f"{instance} {secrets.token_hex(4)}"
        self._event_tasks: set[asyncio.Task[None]] = set()
        self.phases: dict[RunKey, str] = {}

    def reset_caches(self) -> None:
        """Forget our own recent writes: after a pause, the cluster moved on without us."""
        self._written.clear()
        self._recent_jobs.clear()

    def forget(self, key: RunKey) -> None:
        self._written.pop(key, None)
        self._recent_jobs.pop(key, None)
        self._launched.pop(key, None)
        self.access.forget(*key)
        self.grants.forget(*key)
        self.phases.pop(key, None)
        self.circuits.forget(key)

    def freshest(self, key: RunKey, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The cached body if the watch has not yet delivered our own last status write."""
        written = self._written.get(key)
        if written is None:
            return body
        superseded_rv, ours = written
        if body.get("metadata", {}).get("resourceVersion") == superseded_rv:
            return ours
        self._written.pop(key, None)
        return body

    def _merge_recent(
        self, key: RunKey, jobs: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        recent = self._recent_jobs.get(key)
        merged = list(jobs)
        if not recent:
            return merged
        seen = {job.get("metadata", {}).get("name") for job in jobs}
        horizon = time.monotonic() - RECENT_JOB_TTL_SECONDS
        for name, (created, body) in list(recent.items()):
            if name in seen or created < horizon:
                del recent[name]
            else:
                merged.append(body)
        return merged

    def observe(
        self,
        run_uid: str,
        jobs: Sequence[Mapping[str, Any]],
        pods_of: Callable[[str], Sequence[Mapping[str, Any]]],
        now: datetime,
        events_of: EventsOf = _no_events,
    ) -> tuple[list[ObservedJob], float | None]:
        """This run's Jobs, holding back a failure whose pod details are still in flight."""
        observed: list[ObservedJob] = []
        recheck: float | None = None
        for job in jobs:
            if not owned_by(job, run_uid):
                continue
            name = job.get("metadata", {}).get("name", "")
            pods = pods_of(name)
            events = list(events_of("Job", name))
            for pod in pods:
                pod_name = pod.get("metadata", {}).get("name") if isinstance(pod, Mapping) else None
                if isinstance(pod_name, str):
                    events.extend(events_of("Pod", pod_name))
            item = observe_job(job, pods, events, now)
            if item is None:
                continue
            # The planner classifies a failure by the pod's exit code or reason: while neither
            # has arrived (and is still to come), the failure is not accounted yet.
            if awaits_pod_facts(item):
                age = (now - item.finished_at).total_seconds() if item.finished_at else 0.0
                if age < POD_INFO_GRACE_SECONDS:
                    item = dataclasses.replace(item, phase="Active")
                    wait = POD_INFO_GRACE_SECONDS - age
                    recheck = wait if recheck is None else min(recheck, wait)
            observed.append(item)
        return observed, recheck

    async def reconcile(
        self,
        key: RunKey,
        body: Mapping[str, Any],
        jobs: Sequence[Mapping[str, Any]],
        pods_of: Callable[[str], Sequence[Mapping[str, Any]]],
        events_of: EventsOf = _no_events,
    ) -> ReconcileResult:
        body = self.freshest(key, body)
        meta = body.get("metadata", {})
        if meta.get("deletionTimestamp"):
            return ReconcileResult(None)  # being deleted: launch nothing, write nothing
        now = self.clock()
        annotations = meta.get("annotations") or {}
        uid = str(meta.get("uid", ""))
        observed, recheck = self.observe(
            uid, self._merge_recent(key, jobs), pods_of, now, events_of
        )
        spec = as_mapping(body.get("spec"))
        circuits = self.circuits.read(key, body)
        status = as_mapping(body.get("status"))
        # The planner owns status except these fields, which only the shell knows about.
        planner_status = {k: v for k, v in status.items() if k not in SHELL_STATUS_FIELDS}
        snapshot = RunSnapshot(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=uid,
            generation=int(meta.get("generation") or 0),
            created_at=parse_time(meta.get("creationTimestamp")) or now,
            spec=spec,
            status=planner_status,
            redrive=annotations.get(ANNOTATION_REDRIVE),
            jobs=observed,
            circuits=circuits.gates,
            now=now,
            launched=frozenset(self._launched.get(key, ())),
            breaker_access=await self._breaker_access(
                key, uid, spec, status, annotations.get(ANNOTATION_REDRIVE)
            ),
        )
        plan = plan_run(snapshot)
        takeover = self._add_shell_fields(plan, status, circuits.summaries)
        result = await self._apply(key, body, plan)
        if takeover is not None and result.wrote_status:
            self.metrics.redrives.labels("takeover").inc()
            self._post_event(body, "Normal", "TakenOver", takeover)
        if recheck is not None:
            result.requeue_after = (
                recheck if result.requeue_after is None else min(result.requeue_after, recheck)
            )
        return result

    async def _breaker_access(
        self,
        key: RunKey,
        uid: str,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        redrive: Any = None,
    ) -> BreakerAccess | None:
        """Whether the stage pods may keep the run's breakers, for a run in flight that uses any
        (None: nothing to check, or unknown now; the planner keeps the last verdict). A finished
        run about to be re-driven (a new `redrive` value) is in flight again."""
        account = breaker_identity(spec)
        redriving = redrive is not None and redrive != status.get("redrive")
        if account is None or (status.get("phase") in TERMINAL_PHASES and not redriving):
            return None
        # Grant the stage identity `patch` on this run before any of its Jobs exists
        # (stagerbac.py); only where that is not possible, ask what it may do anyway.
        granted = await self.grants.ensure(key[0], key[1], uid, account)
        if granted is not None:
            return granted
        return await self.access.check(key[0], account, key[1])

    def _add_shell_fields(
        self, plan: Plan, old: Mapping[str, Any], circuits: Mapping[str, Any]
    ) -> str | None:
        """Mirror the breakers and stamp this instance on a run in flight. Returns the message of
        a takeover Event when the run was last driven by another (stopped) instance."""
        for field in SHELL_STATUS_FIELDS:
            if field in old:
                plan.status[field] = old[field]
        if circuits or "circuits" in old:
            plan.status["circuits"] = dict(circuits)
        if circuits:
            plan.status["circuitSummary"] = circuits_line(circuits)
        previous = old.get("reconciledBy")
        if plan.status.get("phase") in TERMINAL_PHASES:
            plan.status_changed = plan.status_changed or any(
                plan.status.get(f) != old.get(f) for f in SHELL_STATUS_FIELDS
            )
            return None
        plan.status["reconciledBy"] = self.instance
        plan.status_changed = plan.status_changed or any(
            plan.status.get(f) != old.get(f) for f in SHELL_STATUS_FIELDS
        )
        if previous and previous != self.instance:
            return f"operator {self.instance} took over this run from {previous}"
        return None

    async def _apply(self, key: RunKey, body: Mapping[str, Any], plan: Plan) -> ReconcileResult:
        meta = body.get("metadata", {})
        namespace, name, uid = key[0], key[1], str(meta.get("uid", ""))
        # A fan-out launches many Jobs in one pass: create them concurrently, bounded. If any
        # create fails, the pass fails before the status write; the next pass adopts the rest.
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(manifest: JSON) -> None:
            manifest = self._stamped(manifest)
            async with limit:
                try:
                    job, created = await self.api.create_job(namespace, manifest, uid)
                except JobNameTaken as error:
                    self.metrics.reconcile_errors.labels("job_name_taken").inc()
                    self._post_event(body, "Warning", "JobNameTaken", str(error))
                    return
            (self.metrics.job_launches if created else self.metrics.job_adoptions).inc()
            crash_point("after-job-create")
            job_name = job.get("metadata", {}).get("name", manifest["metadata"]["name"])
            self._recent_jobs.setdefault(key, {})[job_name] = (time.monotonic(), job)
            if created:
                self._launched.setdefault(key, set()).add(job_name)

        outcomes = await asyncio.gather(
            *(create(m) for m in plan.create_jobs), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for job_name in plan.delete_jobs:
            await self.api.delete_job(namespace, job_name)

        old_status = as_mapping(body.get("status"))
        self.phases[key] = str(plan.status.get("phase", "Pending"))
        if not plan.status_changed:
            return ReconcileResult(plan.requeue_after)
        rv = str(meta.get("resourceVersion", ""))
        crash_point("before-status-write")
        written = await self.api.replace_status(namespace, name, rv, plan.status)
        crash_point("after-status-write")
        if written is None:
            self.metrics.status_conflicts.inc()
            return ReconcileResult(CONFLICT_REQUEUE_SECONDS)
        self._written[key] = (rv, written)
        # Every Job created so far is in the status just written (planned or re-found by a pass).
        self._launched.pop(key, None)
        self.metrics.record_node_transitions(
            old_status.get("nodes") or {}, plan.status.get("nodes") or {}
        )
        if plan.status.get("redrive") != old_status.get("redrive"):
            self.metrics.redrives.labels("annotation").inc()
        for event in plan.events:
            self._post_event(written, event.type, event.reason, event.message)
        return ReconcileResult(plan.requeue_after, wrote_status=True)

    def _stamped(self, manifest: JSON) -> JSON:
        """The manifest with this process's launch token among its annotations."""
        meta = dict(manifest.get("metadata") or {})
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            ANNOTATION_LAUNCHED_BY: self.launch_token,
        }
        return {**manifest, "metadata": meta}

    def _post_event(self, run: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        task = asyncio.create_task(self.api.post_event(run, kind, reason, message))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def drain_events(self, grace_seconds: float) -> None:
        """Give in-flight Event posts a chance to land before shutdown."""
        if self._event_tasks:
            await asyncio.wait(list(self._event_tasks), timeout=grace_seconds)
