"""Two operator replicas with kopf peering against one cluster (manifests/ha/): exactly one acts
at a time, never two Jobs for one (node, attempt), and killing the active one hands over.

Each replica talks to the emulator through its own proxy that tags its User-Agent, so the
emulator's request log tells the replicas apart (both send `extraction-operator` / `kopf/...`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from faults_kit import REPO, create_run, events, stage
from faults_proxy import FaultyProxy

import chaos
from conftest import LaunchOperator
from extraction_operator.api.constants import PLURAL

PEERING = "extraction-operator"
HANDOVER_LIMIT_SECONDS = 30.0
# What an actor writes for runs (kopf's peering keep-alives are not acting on runs).
ACTING_RESOURCES = {PLURAL, "jobs", "events"}
WRITE_VERBS = {"create", "update", "patch", "delete"}


def _apply_peering(cluster: Any) -> None:
    cluster.apply(REPO / "manifests" / "ha" / "peering-crds.yaml")
    deadline = time.monotonic() + 10
    while True:  # the CRDs are served a moment after they are created
        try:
            cluster.apply(REPO / "manifests" / "ha" / "peering.yaml")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}"


def _writes(cluster: Any, tag: str) -> list[Any]:
    """Writes for runs (status, annotations, Jobs, Events) the replica `tag` sent, whatever the
    answer: a create refused with 409 is still an attempt to act."""
    return [
        r
        for r in cluster.api.request_log.records()
        if r.user_agent.endswith(f" {tag}")
        and r.verb in WRITE_VERBS
        and r.resource in ACTING_RESOURCES
        and r.status is not None
    ]


class Replicas:
    """Operator replicas with peering, each behind its own tagging proxy."""

    def __init__(self, cluster: Any, launch: LaunchOperator, tmp_path: Path, stack: ExitStack):
        self.cluster, self.launch, self.tmp_path, self.stack = cluster, launch, tmp_path, stack
        self.operators: dict[str, chaos.Operator] = {}

    def start(self, tag: str, priority: int) -> chaos.Operator:
        proxy = self.stack.enter_context(FaultyProxy(self.cluster.url, tag=f"replica-{tag}"))
        operator = self.launch(
            label=f"replica-{tag}",
            kubeconfig=proxy.kubeconfig(self.tmp_path / f"kubeconfig-{tag}"),
            args=["--peering", PEERING, "--priority", str(priority)],
        )
        self.stack.callback(operator.stop, 15)  # before its proxy stops
        self.operators[tag] = operator
        return operator


@pytest.fixture
def replicas(cluster: Any, launch: LaunchOperator, tmp_path: Path) -> Iterator[Replicas]:
    _apply_peering(cluster)
    with ExitStack() as stack:
        yield Replicas(cluster, launch, tmp_path, stack)


def test_one_replica_acts_and_killing_it_hands_over(cluster: Any, replicas: Replicas) -> None:
    active = replicas.start("a", priority=200)
    time.sleep(1.0)
    standby = replicas.start("b", priority=100)
    chaos.create_example_run(cluster, "ha")
    # The active replica drives the run; kill it once it has written something.
    wait = chaos.wait_first_write(cluster, time.time() - 60, ["ha"], timeout=30)
    assert wait is not None, "no replica acted on the run"
    assert _writes(cluster, "replica-a"), "the higher-priority replica is not the active one"
    assert not _writes(cluster, "replica-b"), "the standby acted while the active one was alive"
    deadline = time.monotonic() + 10
    while not chaos.get_run(cluster.url, "ha").get("status", {}).get("reconciledBy"):
        assert time.monotonic() < deadline, "the active replica never stamped status.reconciledBy"
        time.sleep(0.05)
    active.kill()
    killed = time.time()

    phase = chaos.wait_phase(cluster.url, "ha", 90)
    audit = chaos.audit_run(cluster.url, "ha")
    assert phase == "Succeeded", audit.describe()
    assert audit.ok, audit.describe()

    a_writes, b_writes = _writes(cluster, "replica-a"), _writes(cluster, "replica-b")
    assert b_writes, "the standby never took over"
    # Never two actors at once: every write of a precedes its death, every write of b follows.
    assert max(r.time for r in a_writes) <= killed
    first_b = min(r.time for r in b_writes)
    assert first_b > killed
    handover = first_b - killed
    assert handover < HANDOVER_LIMIT_SECONDS, f"handover took {handover:.1f}s"
    print(f"handover after {handover:.1f}s")
    assert standby.alive()
    # The standby said so: a TakenOver Event naming the dead replica's instance.
    takeovers = [e["message"] for e in events(cluster, "ha") if e["reason"] == "TakenOver"]
    assert len(takeovers) == 1, takeovers


@pytest.mark.soak
def test_a_higher_priority_replica_joining_pauses_the_active_one(
    cluster: Any, replicas: Replicas, tmp_path: Path
) -> None:
    """The other way round: `b` drives a run alone, then `a` (higher priority) starts. `b` must
    stop acting (kopf pauses it) before `a` acts: their writes never interleave."""
    log = tmp_path / "stages.jsonl"
    stages = [
        stage(f"s{i}", log, sleep=1.5, depends_on=[f"s{i - 1}"] if i else []) for i in range(4)
    ]
    replicas.start("b", priority=100)
    create_run(cluster, "joined", *stages)
    assert chaos.wait_first_write(cluster, time.time() - 60, ["joined"], timeout=30) is not None
    joined = time.time()
    replicas.start("a", priority=200)
    phase = chaos.wait_phase(cluster.url, "joined", 60)
    audit = chaos.audit_run(cluster.url, "joined")
    assert phase == "Succeeded", audit.describe()
    assert audit.ok, audit.describe()
    a_writes, b_writes = _writes(cluster, "replica-a"), _writes(cluster, "replica-b")
    assert a_writes, "the higher-priority replica never took over"
    last_b, first_a = max(r.time for r in b_writes), min(r.time for r in a_writes)
    late_b = [(r.verb, r.resource, r.subresource, round(r.time - joined, 2)) for r in b_writes
              if r.time >= first_a]  # fmt: skip
    assert last_b < first_a, f"b kept acting after a started acting: {late_b}"


def test_a_paused_replica_launches_no_due_retry(
    cluster: Any, replicas: Replicas, tmp_path: Path
) -> None:
    """`b` drives a run whose stage failed and waits for its retry; `a` (higher priority) joins
    and `b` pauses. When the retry falls due, only `a` may launch it: a paused replica must not
    act on what its (frozen) cache says is due."""
    log = tmp_path / "stages.jsonl"
    slow_retry = {
        "limit": 2,
        "backoff": {"initialSeconds": 5, "factor": 1, "maxSeconds": 5, "jitter": "none"},
    }
    flaky = stage("flaky", log, fail_attempts=1, retry=slow_retry)
    replicas.start("b", priority=100)
    create_run(cluster, "due", flaky)

    def waiting() -> bool:
        node = chaos.get_run(cluster.url, "due").get("status", {}).get("nodes", {}).get("flaky")
        return bool(node) and node.get("phase") == "Waiting"

    deadline = time.monotonic() + 30
    while not waiting():
        assert time.monotonic() < deadline, "the stage never failed into Waiting"
        time.sleep(0.05)
    replicas.start("a", priority=200)
    phase = chaos.wait_phase(cluster.url, "due", 60)
    audit = chaos.audit_run(cluster.url, "due")
    assert phase == "Succeeded", audit.describe()
    assert audit.ok, audit.describe()
    a_writes, b_writes = _writes(cluster, "replica-a"), _writes(cluster, "replica-b")
    assert a_writes, "the higher-priority replica never took over"
    first_a = min(r.time for r in a_writes)
    late_b = [
        (r.verb, r.resource, r.status, _clock(r.time), f"{r.time - first_a:+.2f}s after a acted")
        for r in b_writes
        if r.time >= first_a
    ]
    assert not late_b, f"the paused replica b kept acting after a took over: {late_b}"
