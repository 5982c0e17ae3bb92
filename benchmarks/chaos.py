"""Chaos benchmark: SIGKILL the operator at random moments while the 6-stage example runs.

The example pipeline (`manifests/examples/extraction-pipeline.yaml`: a 3-shard fan-out stage and a
stage that fails its first attempt on purpose) runs on the local cluster with the real operator as
a child process. Once the operator has written to a run (it is driving it), the script waits a
random 0-`--max-gap` seconds, kills it with SIGKILL, restarts it after a random downtime of up to
`--max-downtime` seconds, waits until the new process writes to a run again (its recovery), and
repeats until `--kills` kills have happened, starting new runs (up to `--concurrency` at once)
as old ones finish. Then every run is audited:

- it must end `Succeeded` within `--timeout` seconds of the last kill, else it is stuck;
- exactly one Job per (node, attempt) (labels `extraction.dev/node` and `extraction.dev/attempt`):
  every extra Job counts as a duplicate;
- `status.nodes[*].attempts` must add up to the Jobs that exist (a lost or double-counted attempt).

Recovery is the time from a restart to the new process's first successful write for a run (a
status write or a Job create), i.e. how long a crash stalls progress.

    .venv/bin/python benchmarks/chaos.py --kills 20 --seed 1 [--concurrency 2]

Human-readable lines go to stderr; the figures are one JSON object on the last line of stdout.
The module is also the fault tests' toolkit (`tests/faults` imports it): the operator process with
extra environment and flags, the example run, and the audit.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from extraction_operator.api.constants import (
    API_VERSION,
    LABEL_ATTEMPT,
    LABEL_NODE,
    LABEL_RUN,
    PLURAL,
)
from extraction_operator.localcluster.cluster import LocalCluster, ThreadedLocalCluster

JSON = dict[str, Any]
NAMESPACE = "default"
EXAMPLE = (
    Path(__file__).resolve().parents[1] / "manifests" / "examples" / "extraction-pipeline.yaml"
)
TERMINAL = ("Succeeded", "Failed")
# Our own REST writes carry this User-Agent (kopf's carry `kopf/...`).
OPERATOR_AGENT = "extraction-operator"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- the cluster, over plain HTTP -----------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


def request(
    base: str, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
) -> JSON:
    """One JSON call to the API server (the emulator); raises HttpError on non-2xx."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path + query, data=data, method=method)
    req.add_header("Accept", "application/json")
    req.add_header("User-Agent", "chaos-audit")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raise HttpError(error.code, error.read().decode(errors="replace")) from None
    return json.loads(raw) if raw else {}


def runs_path(namespace: str = NAMESPACE) -> str:
    return f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}"


def get_run(base: str, name: str) -> JSON:
    return request(base, "GET", f"{runs_path()}/{name}")


def run_jobs(base: str, run: JSON) -> list[JSON]:
    """The Jobs this run owns (by ownerReference uid, not only by label)."""
    name, uid = run["metadata"]["name"], run["metadata"]["uid"]
    items = request(
        base,
        "GET",
        f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
        params={"labelSelector": f"{LABEL_RUN}={name}"},
    ).get("items", [])
    return [
        job
        for job in items
        if any(ref.get("uid") == uid for ref in job["metadata"].get("ownerReferences") or [])
    ]


def phase_of(base: str, name: str) -> str | None:
    try:
        phase = get_run(base, name).get("status", {}).get("phase")
    except HttpError:
        return None
    return None if phase is None else str(phase)


def wait_phase(base: str, name: str, timeout: float, phases: Sequence[str] = TERMINAL) -> str:
    """Poll until the run is in one of `phases`; returns the last phase seen (maybe another)."""
    deadline = time.monotonic() + timeout
    phase = phase_of(base, name)
    while phase not in phases and time.monotonic() < deadline:
        time.sleep(0.2)
        phase = phase_of(base, name)
    return str(phase)


# ---- the example run ------------------------------------------------------------------------


def example_objects() -> tuple[JSON, JSON]:
    """(the workspace claim, the ExtractionRun) of the 6-stage example."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    run = next(d for d in docs if d["kind"] == "ExtractionRun")
    return claim, run


def example_run(name: str) -> JSON:
    """The example ExtractionRun under another name (its outputs go to a per-run directory)."""
    _, run = example_objects()
    run = copy.deepcopy(run)
    run["metadata"] = {**run["metadata"], "name": name, "namespace": NAMESPACE}
    return run


def apply_example_claim(cluster: ThreadedLocalCluster) -> None:
    claim, _ = example_objects()
    cluster.apply(claim)


def create_example_run(cluster: ThreadedLocalCluster, name: str) -> JSON:
    return request(cluster.url, "POST", runs_path(), example_run(name))


# ---- the audit ------------------------------------------------------------------------------


@dataclass
class RunAudit:
    """What a finished (or stuck) run looks like against the crash-safety invariants."""

    name: str
    phase: str | None
    jobs: int
    status_attempts: int
    duplicates: dict[str, int] = field(default_factory=dict)  # "node#attempt" -> extra Jobs
    unfinished_nodes: dict[str, str] = field(default_factory=dict)  # node -> phase

    @property
    def duplicate_jobs(self) -> int:
        return sum(self.duplicates.values())

    @property
    def stuck(self) -> bool:
        return self.phase not in TERMINAL or bool(self.unfinished_nodes)

    @property
    def attempts_match(self) -> bool:
        return self.jobs == self.status_attempts

    @property
    def ok(self) -> bool:
        return (
            self.phase == "Succeeded"
            and not self.duplicates
            and self.attempts_match
            and not self.unfinished_nodes
        )

    def describe(self) -> str:
        return (
            f"{self.name}: phase={self.phase} jobs={self.jobs} "
            f"status_attempts={self.status_attempts} duplicates={self.duplicates} "
            f"unfinished={self.unfinished_nodes}"
        )


def audit_run(base: str, name: str) -> RunAudit:
    run = get_run(base, name)
    status = run.get("status") or {}
    nodes: Mapping[str, Any] = status.get("nodes") or {}
    jobs = run_jobs(base, run)
    keys = Counter(
        f"{job['metadata']['labels'].get(LABEL_NODE)}#{job['metadata']['labels'].get(LABEL_ATTEMPT)}"
        for job in jobs
    )
    return RunAudit(
        name=name,
        phase=status.get("phase"),
        jobs=len(jobs),
        status_attempts=sum(int(node.get("attempts") or 0) for node in nodes.values()),
        duplicates={key: count - 1 for key, count in keys.items() if count > 1},
        unfinished_nodes={
            node: str(info.get("phase"))
            for node, info in nodes.items()
            if info.get("phase") not in ("Succeeded", "Failed", "Skipped")
        },
    )


def count_events(base: str, runs: Sequence[str], reason: str) -> int:
    """How many Events with `reason` were posted on these runs."""
    items = request(base, "GET", f"/api/v1/namespaces/{NAMESPACE}/events").get("items", [])
    wanted = set(runs)
    return sum(
        1
        for event in items
        if event.get("reason") == reason and event.get("involvedObject", {}).get("name") in wanted
    )


# ---- the operator process -------------------------------------------------------------------


class Operator:
    """`extraction-operator run` as a child process: start, SIGTERM, SIGKILL, restart.

    `env` adds environment (a crash point, say); `args` adds command-line flags (`--peering`)."""

    def __init__(
        self,
        kubeconfig: str | Path,
        log_dir: Path,
        *,
        resync_seconds: float = 1.0,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        label: str = "operator",
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.log_dir = log_dir
        self.resync_seconds = resync_seconds
        self.env = dict(env or {})
        self.args = list(args)
        self.label = label
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, env: Mapping[str, str] | None = None) -> Operator:
        """Start a new process; `env` overrides the instance's extra environment for this one."""
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        extra = self.env if env is None else dict(env)
        full_env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONUNBUFFERED": "1"}
        full_env.pop("EXTRACTION_OPERATOR_CRASH_AT", None)
        full_env.update(extra)
        command = [
            sys.executable,
            "-m",
            "extraction_operator",
            "run",
            "--kubeconfig",
            self.kubeconfig,
            "--metrics-port",
            "0",
            "--liveness",
            "",
            "--resync-seconds",
            str(self.resync_seconds),
            "--log-format",
            "full",
            *self.args,
        ]
        with open(self.log_dir / f"{self.label}-{self.starts}.log", "wb") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=full_env
            )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ends within `timeout` seconds, else None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no drain, no flush."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.log_dir.glob(f"{self.label}-*.log"))
        )


def first_write_after(
    cluster: ThreadedLocalCluster, since: float, runs: Sequence[str] | None = None
) -> float | None:
    """Wall time of the operator's first successful write for a run after `since`: a status
    write of the run or a Job create (a 409 adoption counts: it is the operator acting)."""
    best: float | None = None
    for record in cluster.api.request_log.records():
        if record.time < since or not record.user_agent.startswith(OPERATOR_AGENT):
            continue
        if record.status is None or (record.status >= 400 and record.status != 409):
            continue
        status_write = record.resource == PLURAL and record.subresource == "status"
        job_create = record.resource == "jobs" and record.verb == "create"
        if not (status_write or job_create):
            continue
        if status_write and runs is not None and record.name not in runs:
            continue
        best = record.time if best is None else min(best, record.time)
    return best


def wait_first_write(
    cluster: ThreadedLocalCluster, since: float, runs: Sequence[str], timeout: float
) -> float | None:
    """Seconds from `since` to the operator's next write for `runs` (None: none in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        written = first_write_after(cluster, since, runs)
        if written is not None:
            return written - since
        time.sleep(0.1)
    return None


# ---- the benchmark --------------------------------------------------------------------------


@dataclass
class ChaosResult:
    kills: int = 0
    runs: list[str] = field(default_factory=list)
    audits: list[RunAudit] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)
    unrecovered: int = 0  # restarts after which the operator wrote nothing within the timeout
    takeover_events: int = 0  # TakenOver Events: a restarted operator picked up a run in flight
    seconds: float = 0.0

    def summary(self, seed: int) -> JSON:
        return {
            "kills": self.kills,
            "runs": len(self.runs),
            "succeeded": sum(1 for a in self.audits if a.phase == "Succeeded"),
            "duplicate_jobs": sum(a.duplicate_jobs for a in self.audits),
            "stuck_runs": sum(1 for a in self.audits if a.stuck),
            "attempt_mismatches": sum(1 for a in self.audits if not a.attempts_match),
            "max_recovery_seconds": round(max(self.recoveries, default=0.0), 3),
            "mean_recovery_seconds": round(
                sum(self.recoveries) / len(self.recoveries) if self.recoveries else 0.0, 3
            ),
            "unrecovered_restarts": self.unrecovered,
            "takeover_events": self.takeover_events,
            "seed": seed,
            "wall_seconds": round(self.seconds, 1),
        }


def run_chaos(
    cluster: ThreadedLocalCluster,
    operator: Operator,
    *,
    kills: int,
    seed: int,
    concurrency: int = 1,
    max_runs: int | None = None,
    kill_after: tuple[float, float] = (0.0, 2.0),
    downtime: tuple[float, float] = (0.0, 1.0),
    recovery_timeout: float = 60.0,
    finish_timeout: float = 120.0,
    prefix: str = "chaos",
) -> ChaosResult:
    """Kill and restart `operator` `kills` times at random moments while example runs go on.

    The operator must be started (or not: it is started here if it is not running). New runs
    start while fewer than `concurrency` are unfinished, at most `max_runs` in all (None: no
    limit). Returns the kills, runs, their audits and the recovery times."""
    rng = random.Random(seed)
    result = ChaosResult()
    started = time.monotonic()
    if not operator.alive():
        operator.start()
    last_start, restarted = time.time(), False

    def unfinished() -> list[str]:
        return [name for name in result.runs if phase_of(cluster.url, name) not in TERMINAL]

    while True:
        active = unfinished()
        while len(active) < concurrency and (max_runs is None or len(result.runs) < max_runs):
            name = f"{prefix}-{len(result.runs) + 1}"
            create_example_run(cluster, name)
            result.runs.append(name)
            active.append(name)
            log(f"started run {name}")
        if not active:
            log("every run has finished; no more kills to do")
            break
        # Kill only an operator that is driving a run: after its first write since it started.
        recovery = wait_first_write(cluster, last_start, active, recovery_timeout)
        if restarted and recovery is None:
            result.unrecovered += 1
            log(f"kill {result.kills}: NO write within {recovery_timeout:g}s of the restart")
        elif restarted and recovery is not None:
            result.recoveries.append(recovery)
            log(f"kill {result.kills}: restarted, first write after {recovery:.2f}s")
        if result.kills >= kills:
            break
        time.sleep(rng.uniform(*kill_after))
        operator.kill()
        result.kills += 1
        time.sleep(rng.uniform(*downtime))
        # Only writes after the restart matter from here on; a short log keeps polling it cheap
        # (the emulator serves requests in this process, so a slow poll would slow it down).
        cluster.api.request_log.clear()
        last_start, restarted = time.time(), True
        operator.start()
    for name in result.runs:
        wait_phase(cluster.url, name, finish_timeout)
        audit = audit_run(cluster.url, name)
        result.audits.append(audit)
        log(("ok    " if audit.ok else "WRONG ") + audit.describe())
    result.takeover_events = count_events(cluster.url, result.runs, "TakenOver")
    result.seconds = time.monotonic() - started
    return result


@contextlib.contextmanager
def chaos_cluster(workdir: Path) -> Iterator[ThreadedLocalCluster]:
    """A local cluster with the CRD and the example's workspace claim."""
    with LocalCluster.threaded(workdir / "cluster") as cluster:
        cluster.apply_crds()
        apply_example_claim(cluster)
        yield cluster


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to deliver")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1, help="runs going on at once")
    parser.add_argument(
        "--max-gap", type=float, default=2.0, help="longest wait after the first write to a kill"
    )
    parser.add_argument("--max-downtime", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=180.0, help="for runs to finish")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-"))
        )
        cluster = stack.enter_context(chaos_cluster(workdir))
        operator = Operator(cluster.kubeconfig, workdir / "logs")
        stack.callback(operator.stop)
        result = run_chaos(
            cluster,
            operator,
            kills=args.kills,
            seed=args.seed,
            concurrency=args.concurrency,
            kill_after=(0.0, args.max_gap),
            downtime=(0.0, args.max_downtime),
            finish_timeout=args.timeout,
        )
        summary = result.summary(args.seed)
        operator_alive = operator.alive()
    summary["operator_alive_at_end"] = operator_alive
    print(json.dumps(summary, sort_keys=True))
    return 0 if all(a.ok for a in result.audits) and not result.unrecovered else 1


if __name__ == "__main__":
    raise SystemExit(main())
