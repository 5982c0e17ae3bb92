"""A provider outage of ten recovery periods on the real tier: the run waits it out without
spending retries, and one pod per recovery period probes.

The operator is installed from `manifests/` in the session's control plane; the stage pods are
processes of the project's kubelet on this machine, so they reach a `FakeProvider` on 127.0.0.1.
One run fans a stage guarded by the `llm` circuit out into `SHARDS` shards (`retry.limit: 1`,
`failFast: false`); each shard sends two chunks to the provider inside `with circuit("llm")`
(`outage_stage.py`). The provider's outage starts with the first call and lasts
`PERIODS * RECOVERY` seconds. One shard (`BUG_SHARD`) fails its first attempt with a real bug once
the circuit is open, and succeeds on its retry. A second run's only stage always fails with a bug.

While the outage lasts, the test reads the run's guarded Jobs and then the run itself every half
second or so, and checks the issue's done-when ("Provider outages of any length"):

- after the circuit first opened, and while it is not closed again, at most one guarded Job is in
  flight at any sample (the probe), and probes come at most one per recovery period: no more than
  `PERIODS + 1` guarded Jobs were created between the opening and the end of the outage, and
  consecutive ones are at least a recovery time apart (a lower bound a slow machine only eases);
- once the circuit closes, the shards still `Blocked` start then, woken by the closing write
  (not when the probe's lease, `PROBE_TIMEOUT`, would have expired: which of the two woke them
  up is told apart by the order of events, with a lease far longer than anything else takes).
  Checked last, so the others report first;
- no node's `failures` ever grows from a provider failure (only the bug shard's, to 1); nodes wait
  as `Blocked` (`ProviderOutage` or `CircuitOpen`), a provider-failed attempt's message says it
  waited for the provider, and `attempts` keeps counting (one per Job);
- the run Succeeds after the outage; the always-buggy run ends `Failed` with its failures at
  `limit + 1`;
- the provider saw a bounded number of failed calls.

No duration is asserted as such: the probe spacing is a lower bound (a slow machine only eases
it), and the release after closing is ordered against the lease's expiry. The observed timeline
is printed (`pytest -s`) for the record, and is part of every assertion message about the outage.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cluster_kit import Kubectl, wait_for
from extraction_operator.examples.provider import FakeProvider

HERE = Path(__file__).resolve().parent
STAGE_SCRIPT = HERE / "outage_stage.py"
PYTHON = sys.executable
STAGE_ACCOUNT = "extraction-stage"
BREAKERS = "extraction.dev/circuit-breakers"
LABEL_RUN = "extraction.dev/run"
LABEL_STAGE = "extraction.dev/stage"
LABEL_ATTEMPT = "extraction.dev/attempt"
ANNOTATION_NODE = "extraction.dev/node"
CIRCUIT = "llm"
GUARDED = "extract"

RECOVERY = 3  # recoveryTimeoutSeconds
PERIODS = 10  # the outage lasts this many recovery periods
OUTAGE = RECOVERY * PERIODS
THRESHOLD = 2  # failureThreshold
SHARDS = 5
CALLS = 2  # provider calls per shard
LIMIT = 1  # retry.limit
# The probe's lease. Far longer than a probe takes, so shards that start only when a lease
# expires (rather than when the circuit closes) show up as a wait of about this long.
PROBE_TIMEOUT = 60
ANSWER_SECONDS = 2  # how long a successful provider call takes
BUG_SHARD = 0
BUG_NODE = f"{GUARDED}[{BUG_SHARD}]"
BLOCKED_REASONS = {"ProviderOutage", "CircuitOpen"}
EXIT_CIRCUIT_OPEN = 75
FINISHED_CONDITIONS = {"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"}
SAMPLE_EVERY = 0.5
RUN_TIMEOUT = 300.0


def _epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _clock(epoch: float | None, origin: float) -> str:
    return "-" if epoch is None else f"{epoch - origin:+.1f}s"


# ------------------------------------------------------------------------------ observations


@dataclass(frozen=True)
class JobView:
    name: str
    node: str
    attempt: int
    created: float  # creationTimestamp: whole seconds
    active: int
    in_flight: bool  # neither finished nor counted as a succeeded or failed pod yet

    @classmethod
    def of(cls, job: dict[str, Any]) -> JobView:
        meta, status = job["metadata"], job.get("status") or {}
        finished = any(
            c.get("type") in FINISHED_CONDITIONS and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        active = int(status.get("active") or 0)
        counted = bool(status.get("failed") or status.get("succeeded"))
        created = _epoch(meta.get("creationTimestamp"))
        assert created is not None, meta
        return cls(
            name=meta["name"],
            node=(meta.get("annotations") or {}).get(ANNOTATION_NODE, "?"),
            attempt=int((meta.get("labels") or {}).get(LABEL_ATTEMPT, "0")),
            created=created,
            active=active,
            in_flight=active > 0 or not (finished or counted),
        )


@dataclass(frozen=True)
class Sample:
    """Guarded Jobs read first, the run after: a circuit the run shows as not closed was not
    closed when the Jobs were read either (it closes once, after the outage)."""

    at: float
    jobs: dict[str, JobView]
    circuit: dict[str, Any]  # the annotation's record of the circuit
    summary: dict[str, Any]  # status.circuits.llm
    nodes: dict[str, dict[str, Any]]
    phase: str

    @property
    def state(self) -> str:
        return str(self.circuit.get("state", "closed"))

    @property
    def opens(self) -> int:
        return int(self.circuit.get("opens") or 0)


@dataclass
class Recorder:
    kube: Kubectl
    namespace: str
    run: str
    samples: list[Sample] = field(default_factory=list)
    jobs: dict[str, JobView] = field(default_factory=dict)  # every guarded Job seen, last view

    def read_run(self) -> dict[str, Any]:
        return self.kube.json("get", "xrun", self.run, "-n", self.namespace)

    def read_jobs(self) -> dict[str, JobView]:
        selector = f"{LABEL_RUN}={self.run},{LABEL_STAGE}={GUARDED}"
        doc = self.kube.json("get", "jobs", "-n", self.namespace, "-l", selector)
        views = [JobView.of(item) for item in doc["items"]]
        return {view.name: view for view in views}

    def sample(self) -> Sample:
        jobs = self.read_jobs()
        run = self.read_run()
        at = time.time()
        annotations = run["metadata"].get("annotations") or {}
        document = json.loads(annotations.get(BREAKERS) or "{}")
        status = run.get("status") or {}
        taken = Sample(
            at=at,
            jobs=jobs,
            circuit=(document.get("circuits") or {}).get(CIRCUIT) or {},
            summary=(status.get("circuits") or {}).get(CIRCUIT) or {},
            nodes=status.get("nodes") or {},
            phase=status.get("phase") or "",
        )
        self.samples.append(taken)
        self.jobs.update(jobs)
        return taken

    def record_until_done(self, timeout: float) -> Sample:
        deadline = time.monotonic() + timeout
        while True:
            taken = self.sample()
            if taken.phase in ("Succeeded", "Failed"):
                return taken
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {self.run} to finish\n"
                    + self.timeline()
                )
            time.sleep(SAMPLE_EVERY)

    # ---------------------------------------------------------------------------- analysis

    def first_opened_at(self) -> float | None:
        """When the circuit first opened (`openedAt` while `opens` is 1; else the earliest)."""
        first = [_epoch(s.circuit.get("openedAt")) for s in self.samples if s.opens == 1]
        seen = [_epoch(s.circuit.get("openedAt")) for s in self.samples if s.opens >= 1]
        for candidates in (first, seen):
            times = [t for t in candidates if t is not None]
            if times:
                return min(times)
        return None

    def closed_at(self, opened: float) -> float | None:
        """When the circuit closed again after the outage: `updatedAt` of the first closed
        record seen after it had opened."""
        for s in self.samples:
            if s.opens >= 1 and s.state == "closed":
                updated = _epoch(s.circuit.get("updatedAt"))
                if updated is not None and updated >= opened:
                    return updated
        return None

    def open_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.opens >= 1 and s.state != "closed"]

    def timeline(self) -> str:
        origin = self.samples[0].at if self.samples else time.time()
        opened = self.first_opened_at()
        lines = [f"circuit first opened at {_clock(opened, origin)}"]
        for job in sorted(self.jobs.values(), key=lambda j: (j.created, j.name)):
            lines.append(
                f"  job {job.name} node={job.node} attempt={job.attempt} "
                f"created={_clock(job.created, origin)} in_flight={job.in_flight}"
            )
        previous = ""
        for s in self.samples:
            flying = sorted(j.name for j in s.jobs.values() if j.in_flight)
            nodes = " ".join(
                f"{key}:{n.get('phase')}/{n.get('reason')}/a{n.get('attempts')}f{n.get('failures')}"
                for key, n in sorted(s.nodes.items())
            )
            line = f"{s.state}(opens={s.opens}) run={s.phase} in-flight={flying} nodes: {nodes}"
            if line != previous:
                lines.append(f"  {_clock(s.at, origin)} {line}")
                previous = line
        blocked = {
            (n.get("reason"), n.get("exitCode"), n.get("message"))
            for s in self.samples
            for n in s.nodes.values()
            if n.get("phase") == "Blocked"
        }
        for reason, code, message in sorted(blocked, key=str):
            lines.append(f"  Blocked {reason} (exit {code}): {message}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- fixtures


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Kubectl, real_cluster: Any) -> Iterator[str]:
    """A fresh namespace with the stage ServiceAccount; deleted (with its runs) afterwards."""
    if not real_cluster.own:
        pytest.skip("the fake provider listens on this machine's loopback: own tier only")
    request.getfixturevalue("installed_operator")
    name = _unique("outage")
    kube.run("create", "namespace", name)
    kube.run("create", "serviceaccount", STAGE_ACCOUNT, "-n", name)
    try:
        yield name
    finally:
        kube.run("delete", "xrun", "--all", "-n", name, "--wait=false", check=False)
        kube.run("delete", "namespace", name, "--wait=false", check=False)


def _run_manifest(
    name: str, namespace: str, provider_url: str, stage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "python:3.11-slim",  # ignored by the process kubelet; the command runs
            "serviceAccountName": STAGE_ACCOUNT,
            "parallelism": SHARDS + 1,  # every shard starts at once: the outage meets them all
            "failFast": False,
            "retry": {"limit": LIMIT, "backoff": {"initialSeconds": 1, "maxSeconds": 2}},
            "circuitBreakers": {
                CIRCUIT: {
                    "failureThreshold": THRESHOLD,
                    "recoveryTimeoutSeconds": RECOVERY,
                    "successThreshold": 1,
                    "probeTimeoutSeconds": PROBE_TIMEOUT,
                }
            },
            "env": [{"name": "LLM_PROVIDER_URL", "value": provider_url}],
            "stages": [{"circuits": [CIRCUIT], "timeoutSeconds": 120, **stage}],
        },
    }


# -------------------------------------------------------------------------------------- test


@pytest.mark.timeout(420)
def test_an_outage_of_ten_recovery_periods_spends_no_retries_and_probes_with_one_pod(
    kube: Kubectl, namespace: str
) -> None:
    started = time.monotonic()
    outage_run, bug_run = _unique("long"), _unique("buggy")
    with FakeProvider(outage_seconds=OUTAGE) as provider:
        kube.apply(
            _run_manifest(
                outage_run,
                namespace,
                provider.url,
                {
                    "name": GUARDED,
                    "command": [PYTHON, str(STAGE_SCRIPT), "extract"],
                    "shards": SHARDS,
                    "env": [
                        {"name": "BUG_SHARD", "value": str(BUG_SHARD)},
                        {"name": "CALLS", "value": str(CALLS)},
                        {"name": "ANSWER_SECONDS", "value": str(ANSWER_SECONDS)},
                    ],
                },
            )
        )
        kube.apply(
            _run_manifest(
                bug_run,
                namespace,
                provider.url,
                {"name": "broken", "command": [PYTHON, str(STAGE_SCRIPT), "bug"]},
            )
        )
        recorder = Recorder(kube, namespace, outage_run)
        final = recorder.record_until_done(RUN_TIMEOUT)
        stats = provider.stats()
    jobs = recorder.read_jobs()  # the run is over: every guarded Job it made
    recorder.jobs.update(jobs)
    timeline = recorder.timeline()
    elapsed = time.monotonic() - started
    origin = recorder.samples[0].at
    outage_start, outage_end = stats["outage_started_at"], stats["outage_ends_at"]
    print(
        f"\n{outage_run}: {final.phase} after {elapsed:.0f} s, {len(recorder.samples)} samples; "
        f"outage {_clock(outage_start, origin)}..{_clock(outage_end, origin)}; provider: "
        f"{stats['total_calls']} calls, {stats['failed_calls']} failed\n{timeline}"
    )

    # ---- the circuit opened during the outage, and its status shows what the issue asks for
    opened = recorder.first_opened_at()
    assert opened is not None, f"the circuit never opened\n{timeline}"
    assert outage_start is not None, stats
    assert outage_end is not None, stats
    assert outage_start - 1 <= opened <= outage_end, (opened, stats)
    open_summaries = [s.summary for s in recorder.open_samples()]
    assert open_summaries, f"no sample saw the circuit open\n{timeline}"
    assert any(
        s.get("state") in ("open", "half-open") and s.get("openedAt") and s.get("nextProbeAt")
        for s in open_summaries
    ), f"status.circuits.{CIRCUIT} never showed state, openedAt and nextProbeAt: {open_summaries}"
    assert all("failures" in s for s in open_summaries if s), open_summaries

    # ---- one probe pod at a time, at most one per recovery period
    # Jobs created in the second of the opening or before it belong to the first wave.
    after_open = math.floor(opened) + 1
    closed = recorder.closed_at(opened)
    worst: tuple[int, list[str]] = (0, [])
    for s in recorder.open_samples():
        flying = [j.name for j in s.jobs.values() if j.in_flight and j.created >= after_open]
        if len(flying) > worst[0]:
            worst = (len(flying), flying)
    assert worst[0] <= 1, (
        f"{worst[0]} guarded Jobs in flight at once while the circuit was open: {worst[1]}\n"
        f"{timeline}"
    )
    probes = sorted(
        (
            job
            for job in recorder.jobs.values()
            if job.created >= after_open and (closed is None or job.created < math.floor(closed))
        ),
        key=lambda job: job.created,
    )
    during_outage = [job for job in probes if job.created < outage_end]
    assert len(during_outage) <= PERIODS + 1, (
        f"{len(during_outage)} guarded Jobs created during the {OUTAGE} s outage "
        f"({PERIODS} recovery periods): {[j.name for j in during_outage]}\n{timeline}"
    )
    assert len(during_outage) >= 3, (
        f"only {len(during_outage)} probe Jobs during the outage: the run did not probe\n{timeline}"
    )
    gaps = [later.created - earlier.created for earlier, later in itertools.pairwise(probes)]
    # creationTimestamp has whole seconds: a true gap of RECOVERY shows as at least RECOVERY - 1.
    assert all(gap >= RECOVERY - 1 for gap in gaps), (
        f"probes closer than the recovery time ({RECOVERY} s): gaps {gaps}\n{timeline}"
    )

    # ---- provider failures never spend a retry; the node waits as Blocked, saying why
    for s in recorder.samples:
        for key, node in s.nodes.items():
            allowed = 1 if key == BUG_NODE else 0
            assert int(node.get("failures") or 0) <= allowed, (
                f"{key} counted a provider failure against its retries: {node}\n{timeline}"
            )
    blocked = [
        (key, node) for s in recorder.samples for key, node in s.nodes.items()
        if node.get("phase") == "Blocked"
    ]  # fmt: skip
    assert blocked, f"no node was ever seen Blocked during the outage\n{timeline}"
    # A node parked after an attempt that failed on the provider (exit code not 75; the bug
    # shard's first attempt aside) says so in its message at least once while parked after it.
    parked: dict[tuple[str, int], list[str]] = {}
    for key, node in blocked:
        assert node.get("reason") in BLOCKED_REASONS, (key, node)
        message = node.get("message") or ""
        if node.get("reason") == "ProviderOutage":
            assert "provider" in message.lower(), (key, node)
        attempt = int(node.get("attempts") or 0)
        if node.get("exitCode") != EXIT_CIRCUIT_OPEN and (key, attempt) != (BUG_NODE, 1):
            parked.setdefault((key, attempt), []).append(message)
    silent = {
        f"{key} attempt {attempt}": messages
        for (key, attempt), messages in parked.items()
        if not any("provider" in message.lower() for message in messages)
    }
    assert not silent, f"parked after a provider failure without saying so: {silent}"

    # ---- the run succeeded after the outage; the bug counted, once
    assert final.phase == "Succeeded", f"{final.phase}: {final.nodes}\n{timeline}"
    nodes = final.nodes
    assert set(nodes) == {f"{GUARDED}[{i}]" for i in range(SHARDS)}, nodes
    for key, node in nodes.items():
        assert node["phase"] == "Succeeded", (key, node)
        expected = 1 if key == BUG_NODE else 0
        assert node.get("failures", 0) == expected, (key, node)
    assert nodes[BUG_NODE]["attempts"] >= 2, nodes[BUG_NODE]
    # attempts keep counting: one per Job, and the outage made some shard try again for free
    assert len(jobs) == sum(node["attempts"] for node in nodes.values()), (
        sorted(jobs),
        {key: node["attempts"] for key, node in nodes.items()},
    )
    assert any(node["attempts"] > 1 for key, node in nodes.items() if key != BUG_NODE), (
        f"no shard needed a second attempt: the outage never reached the shards\n{timeline}"
    )

    # ---- the provider saw a bounded number of failed calls, and every chunk in the end
    assert THRESHOLD <= stats["failed_calls"] <= THRESHOLD + SHARDS + PERIODS + 1, stats
    assert stats["total_calls"] - stats["failed_calls"] >= SHARDS * CALLS, stats

    # ---- a run whose stage has a real bug still spends its retries and fails
    buggy = wait_for(
        f"{bug_run} to finish",
        lambda: (
            run
            if (run := kube.json("get", "xrun", bug_run, "-n", namespace))
            .get("status", {})
            .get("phase")
            in ("Succeeded", "Failed")
            else None
        ),
        120,
    )
    broken = buggy["status"]["nodes"]["broken"]
    assert buggy["status"]["phase"] == "Failed", buggy["status"]
    assert broken["phase"] == "Failed", broken
    assert broken["failures"] == LIMIT + 1, broken
    assert broken["attempts"] == LIMIT + 1, broken

    # ---- once the circuit closes, the shards still waiting start (not when a lease expires)
    assert closed is not None, f"the circuit never closed again\n{timeline}"
    released = [job for job in recorder.jobs.values() if job.created >= math.floor(closed)]
    assert released, f"no shard started after the circuit closed\n{timeline}"
    late = [job.name for job in released if job.created > closed + PROBE_TIMEOUT]
    assert not late, (
        f"shards started only {max(j.created for j in released) - closed:.0f} s after the "
        f"circuit closed, when the probe lease ({PROBE_TIMEOUT} s) ran out: {late}\n{timeline}"
    )
