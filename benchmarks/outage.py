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

Usage: `python benchmarks/outage.py [--outage-seconds 60 --shards 38]`, or `--quick` for a short
smoke run (8 shards, 3 Jobs at once per run, a 10 s outage and a 10 s recovery time, so the first
probe comes after the outage and the figures show the opening alone). The exit code is 0 when the
shared breaker's run succeeded with at most failureThreshold + 2 failed calls.

Reading the figures: the shared breaker's failed calls are the `failureThreshold` failures that
open the circuit, plus calls other shards had already started when it opened (up to one per Job
running at that moment), plus one failed probe per recovery time that ends inside the outage.
`failure_offsets_seconds` shows when each failed call arrived, from the first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from extraction_operator.api.constants import ANNOTATION_BREAKERS, GROUP, PLURAL, VERSION
from extraction_operator.examples.chunk import make_chunks, sample_text
from extraction_operator.examples.provider import FakeProvider
from extraction_operator.localcluster.cluster import LocalCluster

NAMESPACE = "default"
CLAIM = "outage-bench-data"
VARIANTS: dict[str, list[dict[str, str]]] = {
    "no_breaker": [{"name": "LLM_BREAKER", "value": "off"}],
    "local_breaker": [{"name": "EXTRACTION_BREAKER_SCOPE", "value": "local"}],
    "shared_breaker": [],
}
FINISHED = ("Succeeded", "Failed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--shards", type=int, default=38)
    parser.add_argument("--chunks-per-shard", type=int, default=5)
    parser.add_argument("--retry-limit", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=8, help="stage Jobs per run at once")
    parser.add_argument("--failure-threshold", type=int, default=5)
    parser.add_argument("--recovery-seconds", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this long")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 8 shards, parallelism 3, 10 s outage, 10 s recovery",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.shards, args.parallelism = 8, 3
        args.outage_seconds, args.recovery_seconds = 10.0, 10
    for name in ("shards", "chunks_per_shard", "parallelism", "failure_threshold"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.outage_seconds < 0 or args.retry_limit < 0 or args.recovery_seconds < 1:
        parser.error("--outage-seconds and --retry-limit must be >= 0, --recovery-seconds >= 1")
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
    name: str, variant_env: list[dict[str, str]], provider_url: str, corpus: Path, args: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
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
                "llm": {
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
                    "name": "mentions",
                    "command": ["python", "-m", "extraction_operator.examples.mentions"],
                    "dependsOn": ["chunk"],
                    "shards": args.shards,
                    "circuits": ["llm"],
                    "timeoutSeconds": 120,
                    "env": [
                        {"name": "LLM_PROVIDER_URL", "value": provider_url},
                        {"name": "LLM_PROVIDER_TIMEOUT_SECONDS", "value": "2"},
                        *variant_env,
                    ],
                },
            ],
        },
    }


def claim() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def read_run(url: str, name: str) -> dict[str, Any]:
    path = f"{url}/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}/{name}"
    with urllib.request.urlopen(path, timeout=30) as response:
        run: dict[str, Any] = json.load(response)
    return run


def circuit_opens(run: dict[str, Any]) -> int:
    """How often the shared `llm` circuit opened, from the breaker annotation's `opens` (0 when
    it never did, or when the breaker was not shared)."""
    raw = ((run.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_BREAKERS, "")
    try:
        opens = json.loads(raw)["circuits"]["llm"]["opens"]
    except (ValueError, KeyError, TypeError):
        return 0
    return opens if isinstance(opens, int) else 0


def mentions_attempts(run: dict[str, Any]) -> int:
    """Attempts spent by the mentions shards (exits 75 while a circuit was open do not count)."""
    nodes = (run.get("status") or {}).get("nodes") or {}
    return sum(
        node.get("attempts", 0) for key, node in nodes.items() if key.startswith("mentions[")
    )


def follow(url: str, started: dict[str, float], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll until every run has finished; note each run's wall time when it does."""
    deadline = time.monotonic() + timeout
    finished: dict[str, dict[str, Any]] = {}
    last_line = ""
    while len(finished) < len(started) and time.monotonic() < deadline:
        line = []
        for name, start in started.items():
            if name in finished:
                continue
            run = read_run(url, name)
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
            finished[name] = {"run": read_run(url, name), "wall_seconds": time.monotonic() - start}
    return finished


def start_operator(kubeconfig: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "extraction_operator", "run", "--kubeconfig", str(kubeconfig),
             "--metrics-port", "0", "--liveness", "", "--resync-seconds", "1",
             "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    providers = {
        variant: FakeProvider(outage_seconds=args.outage_seconds).start() for variant in VARIANTS
    }
    try:
        with tempfile.TemporaryDirectory(prefix="outage-bench-") as tmp:
            workdir = Path(tmp)
            corpus = workdir / "corpus.txt"
            write_corpus(corpus, args.shards * args.chunks_per_shard)
            with LocalCluster.threaded(workdir / "cluster") as cluster:
                cluster.apply_crds()
                operator = start_operator(cluster.kubeconfig, workdir / "operator.log")
                try:
                    time.sleep(2.0)  # let the operator connect first
                    cluster.apply(claim())
                    started: dict[str, float] = {}
                    for variant, env in VARIANTS.items():
                        name = f"outage-{variant.replace('_', '-')}"
                        cluster.apply(build_run(name, env, providers[variant].url, corpus, args))
                        started[name] = time.monotonic()
                    finished = follow(cluster.url, started, args.timeout)
                finally:
                    operator.terminate()
                    operator.wait(30)
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
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = benchmark(args)
    print(json.dumps(figures))
    shared = figures["shared_breaker"]
    target_met = (
        shared["run_phase"] == "Succeeded" and shared["failed_calls"] <= args.failure_threshold + 2
    )
    return 0 if target_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
