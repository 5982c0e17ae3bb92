"""Benchmark circuit breakers in a provider outage: no breaker, per-pod breaker, shared breaker.

Three ExtractionRuns run side by side on one local cluster, with the real operator as a child
process. Each is `chunk -> mentions` where `mentions` fans out into `--shards` shards guarded by
the `llm` circuit; every shard sends `--chunks-per-shard` chunks, one call each, to its own fake
LLM provider (`extraction_operator.examples.provider`), which fails every call with 503 for
`--outage-seconds` from the run's first call. Each shard may be retried 3 times (backoff 1 s
doubling to at most 10 s, full jitter), and the runs do not fail fast, so every shard gets its
chance. The variants differ only in the env of the mentions stage:

- `no_breaker`: `LLM_BREAKER=off`, the stage calls the provider without `circuit()`;
- `local_breaker`: `EXTRACTION_BREAKER_SCOPE=local`, a breaker in each pod's memory;
- `shared_breaker`: the default, one breaker in the run's annotation shared by all pods.

For each: calls that reached the provider (total and failed), wall time from apply to the run's
end, the run's phase, and how often the shared circuit opened. The figures are printed as one
JSON object on the last line.

Usage: `python benchmarks/outage.py [--outage-seconds 60 --shards 38] [--tier emulator|real]`, or
`--quick` for a short smoke run (8 shards, 3 Jobs at once per run, a 10 s outage and a 10 s recovery
time, so the first probe comes after the outage and the figures show the opening alone). Flags given
explicitly win over `--quick`. The exit code is 0 when the shared breaker's run succeeded with at
most failureThreshold + 2 failed calls. This mode runs on the embedded API emulator unless `--tier
real` asks for the real control plane tier (`benchmarks/realtier.py`).

Reading the figures: the shared breaker's failed calls are the `failureThreshold` failures that
open the circuit, plus calls other shards had already started when it opened (up to one per Job
running at that moment), plus one failed probe per recovery time that ends inside the outage.
`failure_offsets_seconds` shows when each failed call arrived, from the first.

Long outage: `python benchmarks/outage.py --long-outage` runs ONE ExtractionRun with the shared
breaker only, on the real control plane tier by default: 38 shards, retry limit 3, recovery time
5 s, a 120 s outage (`--shards`, `--retry-limit`, `--recovery-seconds`, `--outage-seconds` override
them; `--quick` makes it 8 shards and a 30 s outage). While the run goes, the Jobs of the guarded
stage and the run's breaker state are polled every 0.5 s. The last line is `{"long_outage": {...}}`:

- `run_phase`, `progress`: the run's phase and node count at the end;
- `failed_calls`, `total_calls`: extraction calls that reached the provider (failed: in the outage);
- `failure_threshold`, `recovery_seconds`, `outage_seconds`, `shards`, `retry_limit`, `parallelism`;
- `recovery_periods`: outage seconds / recovery seconds, rounded up;
- `circuit_opened_after_outage_start_seconds`: from the provider's first failure (the outage start)
  to the circuit's first `openedAt`; `circuit_opens`: the breaker's `opens` counter at the end;
- `in_flight_at_opening`: failed calls beyond `failureThreshold` that arrived no later than one
  second after the first opening, i.e. calls already under way when the circuit opened;
- `pods_started_during_outage`: Jobs (one pod each) of the guarded stage created in [outage start,
  outage end); `probe_pods`: those of them created at or after the circuit's first opening;
  `pods_per_recovery_period` and `failed_calls_per_recovery_period` split them by recovery period
  from the outage start; `guarded_stage_jobs`: all Jobs of the guarded stage;
- `seconds_after_outage`: when the run was seen finished, minus the outage end; split into the
  operator's part, `seconds_after_outage_to_circuit_closed` (the next probe succeeded) and
  `seconds_after_outage_to_last_job_created` (every waiting shard launched), and the work that
  remains after that (the shards themselves running);
- `wall_seconds`: from applying the run to seeing it finished;
- `targets` (with the bounds in `bounds`): `failed_calls` <= failureThreshold +
  in_flight_at_opening + recovery_periods; `pods_started_during_outage` <= recovery_periods + 1;
  `seconds_after_outage` < recovery time + 10 s, and the run Succeeded.

A Job's creation time is when the poll first saw it, or its `creationTimestamp` (whole seconds)
plus one second if that is earlier. The exit code is 0 when the run Succeeded, whatever the
targets; 130 when interrupted. Every process it started (control plane, node and its pods,
operator) is stopped on the way out, on Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from extraction_operator.api.constants import (
    ANNOTATION_BREAKERS,
    GROUP,
    LABEL_RUN,
    LABEL_STAGE,
    PLURAL,
    VERSION,
)
from extraction_operator.breaker.document import parse_timestamp
from extraction_operator.examples.chunk import make_chunks, sample_text
from extraction_operator.examples.provider import FakeProvider
from extraction_operator.planner.naming import run_label_value
from realtier import TIERS, Api, Tier, open_tier

NAMESPACE = "default"
CLAIM = "outage-bench-data"
CIRCUIT = "llm"
GUARDED_STAGE = "mentions"
LONG_RUN = "outage-long"
VARIANTS: dict[str, list[dict[str, str]]] = {
    "no_breaker": [{"name": "LLM_BREAKER", "value": "off"}],
    "local_breaker": [{"name": "EXTRACTION_BREAKER_SCOPE", "value": "local"}],
    "shared_breaker": [],
}
FINISHED = ("Succeeded", "Failed")
POLL_SECONDS = 0.5
POD_SLACK = 1  # pods during the outage may exceed one per recovery period by this many
AFTER_OUTAGE_SLACK_SECONDS = 10.0
# Defaults per mode: (three variants, long outage); --quick's values; explicit flags win.
DEFAULTS: dict[str, tuple[Any, Any]] = {
    "outage_seconds": (60.0, 120.0),
    "shards": (38, 38),
    "parallelism": (8, 8),
    "recovery_seconds": (30, 5),
}
QUICK: dict[str, dict[str, Any]] = {
    "three": {"shards": 8, "parallelism": 3, "outage_seconds": 10.0, "recovery_seconds": 10},
    "long": {"shards": 8, "outage_seconds": 30.0},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--long-outage",
        action="store_true",
        help="one run, shared breaker only, on the real tier: JSON {'long_outage': {...}}",
    )
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default=None,
        help="cluster to run on (default: real with --long-outage, else emulator)",
    )
    parser.add_argument("--outage-seconds", type=float, default=None, help="default 60; long 120")
    parser.add_argument("--shards", type=int, default=None, help="default 38")
    parser.add_argument("--chunks-per-shard", type=int, default=5)
    parser.add_argument("--retry-limit", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=None, help="stage Jobs per run at once")
    parser.add_argument("--failure-threshold", type=int, default=5)
    parser.add_argument("--recovery-seconds", type=int, default=None, help="default 30; long 5")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up after this long (default 900 s; long: outage + 600 s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 8 shards, parallelism 3, 10 s outage, 10 s recovery "
        "(with --long-outage: 8 shards, 30 s outage)",
    )
    args = parser.parse_args(argv)
    long_mode = int(args.long_outage)
    quick = QUICK["long" if args.long_outage else "three"] if args.quick else {}
    for name, defaults in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, defaults[long_mode]))
    if args.tier is None:
        args.tier = "real" if args.long_outage else "emulator"
    if args.timeout is None:
        args.timeout = args.outage_seconds + 600.0 if args.long_outage else 900.0
    for name in ("shards", "chunks_per_shard", "parallelism", "failure_threshold"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.outage_seconds < 0 or args.retry_limit < 0 or args.recovery_seconds < 1:
        parser.error("--outage-seconds and --retry-limit must be >= 0, --recovery-seconds >= 1")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    return args


def write_corpus(path: Path, chunks: int) -> None:
    """A text with exactly `chunks` chunks: the sample's chunks repeated, one per paragraph."""
    pieces = [chunk.text for chunk in make_chunks(sample_text())]
    path.write_text(
        "\n\n".join(pieces[index % len(pieces)] for index in range(chunks)) + "\n",
        encoding="utf-8",
    )
    if len(make_chunks(path.read_text(encoding="utf-8"))) != chunks:
        raise SystemExit(f"{path}: the corpus does not split into {chunks} chunks")


def build_run(
    name: str,
    variant_env: list[dict[str, str]],
    provider_url: str,
    corpus: Path,
    args: Any,
    service_account: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "local",
        "parallelism": args.parallelism,
        "failFast": False,
        "workspace": {"persistentVolumeClaim": {"claimName": CLAIM}, "mountPath": "/workspace"},
        "retry": {
            "limit": args.retry_limit,
            "backoff": {"initialSeconds": 1, "factor": 2, "maxSeconds": 10, "jitter": "full"},
            "nonRetryableExitCodes": [2],
        },
        "circuitBreakers": {
            CIRCUIT: {
                "failureThreshold": args.failure_threshold,
                "recoveryTimeoutSeconds": args.recovery_seconds,
                "successThreshold": 1,
                "probeTimeoutSeconds": 30,
            }
        },
        "stages": [
            {
                "name": "chunk",
                "command": ["python", "-m", "extraction_operator.examples.chunk"],
                "env": [{"name": "EXAMPLE_INPUT", "value": str(corpus)}],
            },
            {
                "name": GUARDED_STAGE,
                "command": ["python", "-m", "extraction_operator.examples.mentions"],
                "dependsOn": ["chunk"],
                "shards": args.shards,
                "circuits": [CIRCUIT],
                "timeoutSeconds": 120,
                "env": [
                    {"name": "LLM_PROVIDER_URL", "value": provider_url},
                    {"name": "LLM_PROVIDER_TIMEOUT_SECONDS", "value": "2"},
                    *variant_env,
                ],
            },
        ],
    }
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def claim() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def read_run(api: Api, name: str) -> dict[str, Any]:
    return api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}/{name}")


def breaker_circuit(run: dict[str, Any]) -> dict[str, Any]:
    """The shared `llm` circuit from the breaker annotation ({} when absent or unreadable)."""
    raw = ((run.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_BREAKERS, "")
    try:
        circuit = json.loads(raw)["circuits"][CIRCUIT]
    except (ValueError, KeyError, TypeError):
        return {}
    return circuit if isinstance(circuit, dict) else {}


def circuit_opens(run: dict[str, Any]) -> int:
    """How often the shared `llm` circuit opened, from the breaker annotation's `opens` (0 when
    it never did, or when the breaker was not shared)."""
    opens = breaker_circuit(run).get("opens", 0)
    return opens if isinstance(opens, int) else 0


def opened_at(run: dict[str, Any]) -> float | None:
    """When the `llm` circuit last opened (epoch seconds): the annotation's `openedAt`, else
    `status.circuits.llm.openedAt` (the operator's mirror)."""
    status_circuit = ((run.get("status") or {}).get("circuits") or {}).get(CIRCUIT) or {}
    for raw in (breaker_circuit(run).get("openedAt"), status_circuit.get("openedAt")):
        moment = parse_timestamp(raw)
        if moment is not None:
            return moment
    return None


def circuit_state(run: dict[str, Any]) -> str:
    state = breaker_circuit(run).get("state")
    return state if isinstance(state, str) else "closed"


def mentions_attempts(run: dict[str, Any]) -> int:
    """Attempts spent by the mentions shards (exits 75 while a circuit was open do not count)."""
    nodes = (run.get("status") or {}).get("nodes") or {}
    return sum(
        node.get("attempts", 0) for key, node in nodes.items() if key.startswith("mentions[")
    )


def follow(api: Api, started: dict[str, float], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll until every run has finished; note each run's wall time when it does."""
    deadline = time.monotonic() + timeout
    finished: dict[str, dict[str, Any]] = {}
    last_line = ""
    while len(finished) < len(started) and time.monotonic() < deadline:
        line = []
        for name, start in started.items():
            if name in finished:
                continue
            run = read_run(api, name)
            status = run.get("status") or {}
            if status.get("phase") in FINISHED:
                finished[name] = {"run": run, "wall_seconds": time.monotonic() - start}
            line.append(f"{name}: {status.get('phase', 'Pending')} {status.get('progress', '')}")
        summary = "; ".join(line)
        if summary != last_line:
            print(summary, file=sys.stderr, flush=True)
            last_line = summary
        time.sleep(1.0)
    for name, start in started.items():
        if name not in finished:
            finished[name] = {"run": read_run(api, name), "wall_seconds": time.monotonic() - start}
    return finished


def start_operator(kubeconfig: Path, log_path: Path) -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C in the terminal reaches the benchmark alone, which stops the
    # operator first (before the node kills the pods), so nothing relaunches them meanwhile.
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "extraction_operator", "run", "--kubeconfig", str(kubeconfig),
             "--metrics-port", "0", "--liveness", "", "--resync-seconds", "1",
             "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def stop_process(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    providers = {
        variant: FakeProvider(outage_seconds=args.outage_seconds).start() for variant in VARIANTS
    }
    try:
        with tempfile.TemporaryDirectory(prefix="outage-bench-") as tmp:
            workdir = Path(tmp)
            corpus = workdir / "corpus.txt"
            write_corpus(corpus, args.shards * args.chunks_per_shard)
            with open_tier(args.tier, workdir / "tier") as tier:
                operator = start_operator(tier.kubeconfig, workdir / "operator.log")
                try:
                    time.sleep(2.0)  # let the operator connect first
                    tier.apply(claim())
                    started: dict[str, float] = {}
                    for variant, env in VARIANTS.items():
                        name = f"outage-{variant.replace('_', '-')}"
                        run = build_run(
                            name, env, providers[variant].url, corpus, args,
                            tier.stage_service_account,
                        )  # fmt: skip
                        tier.apply(run)
                        started[name] = time.monotonic()
                    finished = follow(tier.api, started, args.timeout)
                finally:
                    stop_process(operator)
    finally:
        for provider in providers.values():
            provider.stop()
    figures: dict[str, Any] = {}
    for variant, provider in providers.items():
        outcome = finished[f"outage-{variant.replace('_', '-')}"]
        run, stats = outcome["run"], provider.stats()
        figures[variant] = {
            "failed_calls": stats["failed_calls"],
            "total_calls": stats["total_calls"],
            "wall_seconds": round(outcome["wall_seconds"], 1),
            "run_phase": (run.get("status") or {}).get("phase", "Pending"),
            "progress": (run.get("status") or {}).get("progress", ""),
            "mentions_attempts": mentions_attempts(run),
            "circuit_opens": circuit_opens(run),
        }
        if variant == "shared_breaker":
            first = stats["first_failure_at"] or 0.0
            figures[variant]["failure_offsets_seconds"] = [
                round(moment - first, 2) for moment in stats["failure_times"]
            ]
    no_breaker_failed = figures["no_breaker"]["failed_calls"]
    shared_failed = figures["shared_breaker"]["failed_calls"]
    figures.update(
        failure_threshold=args.failure_threshold,
        recovery_timeout_seconds=args.recovery_seconds,
        outage_seconds=args.outage_seconds,
        shards=args.shards,
        chunks_per_shard=args.chunks_per_shard,
        retry_limit=args.retry_limit,
        parallelism_per_run=args.parallelism,
        failed_calls_ratio_no_breaker_to_shared=(
            round(no_breaker_failed / shared_failed, 1) if shared_failed else None
        ),
    )
    if args.tier != "emulator":
        figures["tier"] = args.tier
    return figures


# ---- the long outage ----------------------------------------------------------------------


@dataclass
class LongObservation:
    """What the poll saw of one run: its last state, its guarded stage's Jobs, the breaker."""

    run: dict[str, Any] = field(default_factory=dict)
    job_created: dict[str, float] = field(default_factory=dict)  # Job uid -> creation (epoch)
    first_opened_at: float | None = None  # the circuit's earliest openedAt seen
    closed_at: float | None = None  # epoch, when the poll first saw it closed again after that
    applied_at: float = 0.0  # epoch
    finished_at: float | None = None  # epoch, when the poll first saw Succeeded or Failed
    api_errors: int = 0

    def note_run(self, run: dict[str, Any]) -> None:
        self.run = run
        moment = opened_at(run)
        if moment is not None and (self.first_opened_at is None or moment < self.first_opened_at):
            self.first_opened_at = moment
        reopened = self.first_opened_at is not None and self.closed_at is None
        if reopened and circuit_state(run) == "closed":
            self.closed_at = time.time()

    def note_jobs(self, jobs: dict[str, Any], seen_at: float) -> None:
        for job in jobs.get("items") or []:
            meta = job.get("metadata") or {}
            uid = meta.get("uid")
            if not uid or uid in self.job_created:
                continue
            created = seen_at
            stamp = _epoch(meta.get("creationTimestamp"))
            if stamp is not None:
                # creationTimestamp has whole seconds: the creation lies in [stamp, stamp + 1).
                created = min(created, stamp + 1.0)
            self.job_created[uid] = created


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def guarded_jobs_path() -> tuple[str, dict[str, str]]:
    selector = f"{LABEL_RUN}={run_label_value(LONG_RUN)},{LABEL_STAGE}={GUARDED_STAGE}"
    return f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", {"labelSelector": selector}


def observe_long_run(
    tier: Tier,
    observation: LongObservation,
    operator: subprocess.Popen[bytes],
    operator_log: Path,
    timeout: float,
) -> None:
    """Poll the run and its guarded stage's Jobs every POLL_SECONDS until the run finishes."""
    deadline = time.monotonic() + timeout
    jobs_path, jobs_query = guarded_jobs_path()
    last_line = ""
    errors_in_a_row = 0
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError(
                f"the operator exited with {operator.returncode}; its log ends:\n"
                f"{log_tail(operator_log)}"
            )
        tick = time.monotonic()
        try:
            run = read_run(tier.api, LONG_RUN)
            jobs = tier.api.get(jobs_path, jobs_query)
        except (urllib.error.URLError, OSError, ValueError) as error:
            observation.api_errors += 1
            errors_in_a_row += 1
            if errors_in_a_row >= 60:
                raise RuntimeError(f"the API server keeps failing: {error}") from error
            time.sleep(POLL_SECONDS)
            continue
        errors_in_a_row = 0
        now = time.time()
        observation.note_run(run)
        observation.note_jobs(jobs, now)
        status = run.get("status") or {}
        phase = status.get("phase", "Pending")
        line = (
            f"{LONG_RUN}: {phase} {status.get('progress', '')}; circuit {circuit_state(run)}, "
            f"opens {circuit_opens(run)}; {GUARDED_STAGE} Jobs {len(observation.job_created)}"
        )
        if line != last_line:
            print(f"[{now - observation.applied_at:6.1f} s] {line}", file=sys.stderr, flush=True)
            last_line = line
        if phase in FINISHED:
            observation.finished_at = now
            return
        time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - tick)))
    print(f"timed out after {timeout:.0f} s", file=sys.stderr, flush=True)


def _per_period(moments: Iterable[float], start: float, recovery: float, periods: int) -> list[int]:
    counts = [0] * periods
    for moment in moments:
        index = int((moment - start) // recovery)
        if 0 <= index < periods:
            counts[index] += 1
    return counts


def long_outage_figures(
    args: argparse.Namespace, stats: dict[str, Any], observation: LongObservation
) -> dict[str, Any]:
    """The long-outage figures from the provider's stats and what the poll observed."""
    threshold, recovery = args.failure_threshold, float(args.recovery_seconds)
    outage = float(args.outage_seconds)
    periods = math.ceil(outage / recovery)
    status = observation.run.get("status") or {}
    phase = status.get("phase", "Pending")
    start: float | None = stats.get("outage_started_at") or stats.get("first_failure_at")
    end = start + outage if start is not None else None
    opened = observation.first_opened_at
    created = sorted(observation.job_created.values())
    failure_times: list[float] = list(stats.get("failure_times") or [])

    during: list[float] = []
    if start is not None and end is not None:
        during = [moment for moment in created if start <= moment < end]
    probes = [moment for moment in during if opened is not None and moment >= opened]
    in_flight: int | None = None
    if opened is not None:
        early = sum(1 for moment in failure_times if moment <= opened + 1.0)
        in_flight = max(0, early - threshold)
    seconds_after: float | None = None
    if observation.finished_at is not None and end is not None:
        seconds_after = round(observation.finished_at - end, 1)
    # Where the time after the outage goes: the operator's part (the next probe closes the
    # circuit, the waiting shards' Jobs are created) and the work itself (those shards run).
    to_closed = to_launched = None
    if end is not None and observation.closed_at is not None:
        to_closed = round(observation.closed_at - end, 1)
        to_launched = round(max(created) - end, 1) if created else None
    wall: float | None = None
    if observation.finished_at is not None:
        wall = round(observation.finished_at - observation.applied_at, 1)

    failed_bound = threshold + (in_flight or 0) + periods
    pods_bound = periods + POD_SLACK
    after_bound = recovery + AFTER_OUTAGE_SLACK_SECONDS
    failed = int(stats["failed_calls"])
    return {
        "tier": args.tier,
        "run_phase": phase,
        "progress": status.get("progress", ""),
        "failed_calls": failed,
        "total_calls": int(stats["total_calls"]),
        "failure_threshold": threshold,
        "recovery_seconds": args.recovery_seconds,
        "outage_seconds": args.outage_seconds,
        "recovery_periods": periods,
        "in_flight_at_opening": in_flight,
        "circuit_opened_after_outage_start_seconds": (
            round(opened - start, 2) if opened is not None and start is not None else None
        ),
        "circuit_opens": circuit_opens(observation.run),
        "pods_started_during_outage": len(during),
        "probe_pods": len(probes),
        "pods_per_recovery_period": (
            _per_period(during, start, recovery, periods) if start is not None else []
        ),
        "failed_calls_per_recovery_period": (
            _per_period(failure_times, start, recovery, periods) if start is not None else []
        ),
        "guarded_stage_jobs": len(created),
        "mentions_attempts": mentions_attempts(observation.run),
        # Retries spent: the outage should have spent none (a real failure would show here).
        "max_node_failures": max(
            (int(node.get("failures", 0)) for node in (status.get("nodes") or {}).values()),
            default=0,
        ),
        "seconds_after_outage": seconds_after,
        "seconds_after_outage_to_circuit_closed": to_closed,
        "seconds_after_outage_to_last_job_created": to_launched,
        "wall_seconds": wall,
        "shards": args.shards,
        "chunks_per_shard": args.chunks_per_shard,
        "retry_limit": args.retry_limit,
        "parallelism": args.parallelism,
        "api_errors": observation.api_errors,
        "bounds": {
            "failed_calls": failed_bound,
            "pods_started_during_outage": pods_bound,
            "seconds_after_outage": after_bound,
        },
        "targets": {
            "failed_calls": failed <= failed_bound,
            "pods_started_during_outage": start is not None and len(during) <= pods_bound,
            "seconds_after_outage": (
                phase == "Succeeded" and seconds_after is not None and seconds_after < after_bound
            ),
        },
    }


def long_outage(args: argparse.Namespace) -> dict[str, Any]:
    provider = FakeProvider(outage_seconds=args.outage_seconds).start()
    observation = LongObservation()
    try:
        with tempfile.TemporaryDirectory(prefix="outage-long-") as tmp:
            workdir = Path(tmp)
            corpus = workdir / "corpus.txt"
            write_corpus(corpus, args.shards * args.chunks_per_shard)
            started = time.monotonic()
            with open_tier(args.tier, workdir / "tier") as tier:
                print(
                    f"{tier.name} tier up in {time.monotonic() - started:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
                log_path = workdir / "operator.log"
                operator = start_operator(tier.kubeconfig, log_path)
                try:
                    time.sleep(2.0)  # let the operator connect first
                    tier.apply(claim())
                    run = build_run(
                        LONG_RUN, [], provider.url, corpus, args, tier.stage_service_account
                    )
                    tier.apply(run)
                    observation.applied_at = time.time()
                    observe_long_run(tier, observation, operator, log_path, args.timeout)
                finally:
                    stop_process(operator)
    finally:
        provider.stop()
    return long_outage_figures(args, provider.stats(), observation)


# ---- entry point --------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: unwind (which stops every process started), and do not let a second
    signal cut that cleanup short."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        if args.long_outage:
            figures = long_outage(args)
            print(json.dumps({"long_outage": figures}))
            return 0 if figures["run_phase"] == "Succeeded" else 1
        figures = benchmark(args)
    except KeyboardInterrupt:
        print("interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    print(json.dumps(figures))
    shared = figures["shared_breaker"]
    target_met = (
        shared["run_phase"] == "Succeeded" and shared["failed_calls"] <= args.failure_threshold + 2
    )
    return 0 if target_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
