"""Benchmark the reconciler: many concurrent runs of the 6-stage example with no-op stages.

It starts the local cluster in this process and the real operator as a child process, applies N
copies of `manifests/examples/extraction-pipeline.yaml` with every stage command replaced by
`true`, waits until all runs finish, and measures from the API server's request log:

- handoff latency: from the moment the job runner marked a Job complete (its last status write)
  to the creation of each dependant's Job (p50, p99);
- the operator's write requests per stage transition (a transition is a node starting or
  finishing: two per Job);
- the operator's peak RSS (VmHWM) and its CPU seconds per 1,000 transitions.

Usage: `python benchmarks/reconciler.py [--runs 100] [--timeout 600]`. The figures are printed
as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from extraction_operator.api.constants import (
    ANNOTATION_NODE,
    GROUP,
    LABEL_RUN,
    PLURAL,
    VERSION,
)
from extraction_operator.localcluster.cluster import LocalCluster

EXAMPLE = Path(__file__).resolve().parents[1] / "manifests/examples/extraction-pipeline.yaml"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _example_run() -> dict[str, Any]:
    """The ExtractionRun document of the example manifest (it also carries a PVC)."""
    for document in yaml.safe_load_all(EXAMPLE.read_text()):
        if isinstance(document, dict) and document.get("kind") == "ExtractionRun":
            return document
    raise SystemExit(f"{EXAMPLE} holds no ExtractionRun")


def _noop_run(index: int) -> dict[str, Any]:
    run = _example_run()
    run["metadata"] = {"name": f"bench-{index:03d}", "namespace": "default"}
    spec = run["spec"]
    spec.pop("workspace", None)
    spec["parallelism"] = 8
    for stage in spec["stages"]:
        stage["command"] = ["true"]
        stage.pop("env", None)
    return dict(run)


def _proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a live process, from /proc."""
    rss_kib = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                rss_kib = int(line.split()[1])
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss_kib / 1024, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LocalCluster.threaded(Path(tmp)) as cluster:
        cluster.apply_crds()
        log_path = Path(tmp) / "operator.log"
        metrics_port = _free_port()
        with open(log_path, "wb") as log:
            operator = subprocess.Popen(
                [sys.executable, "-m", "extraction_operator", "run", "--kubeconfig",
                 str(cluster.kubeconfig), "--metrics-port", str(metrics_port), "--liveness", "",
                 "--log-level", "warning"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        observer = JobObserver(cluster.url)
        observer.start()
        try:
            time.sleep(2.0)  # let the operator connect before the burst
            _, cpu_before = _proc_stats(operator.pid)
            started = time.time()
            for index in range(args.runs):
                cluster.apply(_noop_run(index))
            phases = _wait_until_finished(cluster.url, args.runs, args.timeout)
            elapsed = time.time() - started
            peak_rss, cpu_after = _proc_stats(operator.pid)
            operator_metrics = _scrape(metrics_port)
        finally:
            operator.terminate()
            operator.wait(30)
            observer.stop_flag.set()
        figures = _measure(observer, cluster.api.request_log.records(), phases)
    figures.update(operator_metrics)
    own = resource.getrusage(resource.RUSAGE_SELF)
    # The cluster side (API emulator + job runner + this observer) shares one process and GIL:
    # when it is saturated, handoffs measure the emulator's queueing, not the operator's.
    figures["cluster_process_cpu_seconds"] = round(own.ru_utime + own.ru_stime, 2)
    figures.update(
        runs=args.runs,
        wall_seconds=round(elapsed, 2),
        operator_peak_rss_mib=round(peak_rss, 1),
        operator_cpu_seconds=round(cpu_after - cpu_before, 2),
    )
    transitions = figures["transitions"]
    figures["cpu_seconds_per_1000_transitions"] = round(
        1000 * (cpu_after - cpu_before) / max(transitions, 1), 2
    )
    print(json.dumps(figures))
    return 0 if figures["succeeded"] == args.runs else 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> dict[str, Any]:
    """Reconcile count and mean duration, and status conflicts, from the operator's metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    count = values.get("extraction_reconcile_duration_seconds_count", 0.0)
    total = values.get("extraction_reconcile_duration_seconds_sum", 0.0)
    return {
        "reconciles": int(count),
        "reconcile_mean_ms": round(1000 * total / count, 2) if count else None,
        "status_conflicts": int(values.get("extraction_status_conflicts_total", 0.0)),
    }


def _wait_until_finished(url: str, runs: int, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    phases: dict[str, str] = {}
    while time.monotonic() < deadline:
        path = f"{url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
        with urllib.request.urlopen(path, timeout=30) as response:
            items = json.load(response)["items"]
        phases = {i["metadata"]["name"]: i.get("status", {}).get("phase", "") for i in items}
        done = sum(1 for p in phases.values() if p in ("Succeeded", "Failed"))
        print(f"{done}/{runs} runs finished", file=sys.stderr)
        if done == runs:
            break
        time.sleep(2.0)
    return phases


class JobObserver(threading.Thread):
    """Watches Jobs and notes when each was first seen and first seen complete (wall time), so
    handoffs are measured by one observer with millisecond resolution (API timestamps have whole
    seconds)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.first_seen: dict[str, float] = {}
        self.completed: dict[str, float] = {}
        self.node_of: dict[str, tuple[str, str]] = {}
        self.stop_flag = threading.Event()

    def _note(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        name = meta["name"]
        now = time.time()
        self.first_seen.setdefault(name, now)
        labels, annotations = meta.get("labels", {}), meta.get("annotations", {})
        self.node_of[name] = (labels.get(LABEL_RUN, ""), annotations.get(ANNOTATION_NODE, ""))
        conditions = job.get("status", {}).get("conditions") or []
        if any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions):
            self.completed.setdefault(name, now)

    def run(self) -> None:
        base = f"{self.url}/apis/batch/v1/namespaces/default/jobs"
        while not self.stop_flag.is_set():
            try:
                with urllib.request.urlopen(base, timeout=30) as response:
                    listing = json.load(response)
                for job in listing["items"]:
                    self._note(job)
                version = listing["metadata"]["resourceVersion"]
                query = f"?watch=true&resourceVersion={version}&timeoutSeconds=60"
                with urllib.request.urlopen(base + query, timeout=90) as stream:
                    for line in stream:
                        if self.stop_flag.is_set():
                            return
                        event = json.loads(line)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self._note(event["object"])
            except (OSError, ValueError):
                time.sleep(0.2)


def _measure(observer: JobObserver, records: list[Any], phases: dict[str, str]) -> dict[str, Any]:
    writes = [
        record
        for record in records
        if record.user_agent.startswith(("extraction-operator", "kopf"))
        and record.verb in WRITE_VERBS
    ]
    operator_writes = len(writes)
    latencies = [r.duration for r in writes if r.duration is not None]
    created = {observer.node_of[name]: t for name, t in observer.first_seen.items()}
    completed = {observer.node_of[name]: t for name, t in observer.completed.items()}
    handoffs = _handoffs(created, completed)
    jobs = len(observer.first_seen)
    transitions = 2 * jobs
    return {
        "succeeded": sum(1 for p in phases.values() if p == "Succeeded"),
        "jobs": jobs,
        "transitions": transitions,
        "handoff_p50_seconds": round(_quantile(handoffs, 0.5), 3),
        "handoff_p99_seconds": round(_quantile(handoffs, 0.99), 3),
        "handoffs_measured": len(handoffs),
        "operator_write_requests": operator_writes,
        "writes_per_transition": round(operator_writes / max(transitions, 1), 2),
        "api_write_p50_ms": round(1000 * _quantile(latencies, 0.5), 1),
        "api_write_p99_ms": round(1000 * _quantile(latencies, 0.99), 1),
    }


def _handoffs(
    created_at: dict[tuple[str, str], float], completed_at: dict[tuple[str, str], float]
) -> list[float]:
    """For each node with dependencies: its Job's creation minus its last dependency's end."""
    example = _example_run()["spec"]["stages"]
    nodes_of: dict[str, list[str]] = {}
    for stage in example:
        shards = int(stage.get("shards", 1))
        nodes_of[stage["name"]] = (
            [stage["name"]] if shards == 1 else [f"{stage['name']}[{i}]" for i in range(shards)]
        )
    by_run: dict[str, dict[str, float]] = defaultdict(dict)
    for (run, node), when in created_at.items():
        by_run[run][node] = when
    latencies = []
    for run, nodes in by_run.items():
        for stage in example:
            deps = [n for d in stage.get("dependsOn", []) for n in nodes_of[d]]
            if not deps:
                continue
            ends = [completed_at.get((run, d)) for d in deps]
            if any(e is None for e in ends):
                continue
            last_end = max(e for e in ends if e is not None)
            for node in nodes_of[stage["name"]]:
                if node in nodes:
                    latencies.append(nodes[node] - last_end)
    return latencies


if __name__ == "__main__":
    raise SystemExit(main())
