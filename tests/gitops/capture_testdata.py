"""Capture the testdata of the Argo CD health check from real runs on the real-cluster tier.

    .venv/bin/python tests/gitops/capture_testdata.py [--out DIR]

Starts the project's real control plane (kube-apiserver, etcd, kube-controller-manager and
kube-scheduler, `extraction_operator.controlplane`) with the process kubelet as its node, installs
the CRD, the stage ServiceAccount and the admission policies with kubectl as an install does, and
runs the operator as a local process (`python -m extraction_operator run`). It then drives one
ExtractionRun into each state a GitOps tool must judge, checks the run really is in that state,
and dumps it with `kubectl get -o json` (without managedFields, uid, resourceVersion and kopf's
bookkeeping annotations) into `testdata/<case>.yaml` of the health check, next to which it writes
`health_test.yaml`: the expected health of every case.

The expected health is the mapping documented in docs/gitops.md; its message is the run's own
summary (`status.message`), which the operator also writes into the deciding kstatus condition,
except for the cases the operator has not judged yet: a stale generation; a run it has not
written a status for, which the API server serves with the CRD's default status
`{observedGeneration: 0}`; and such a run under a CRD without that default, with no status at all
(the capture removes the default from the CRD for this last case, at its very end).

Stage pods are host processes of the process kubelet, so stage commands are ordinary `sh -c`
scripts; the image is only a name here. The whole capture takes about a minute once the control
plane binaries are built (`extraction-operator cluster --build-only`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster_kit import Kubectl, wait_for
from extraction_operator.api.constants import ANNOTATION_BREAKERS
from extraction_operator.breaker import format_timestamp

REPO = Path(__file__).resolve().parents[2]
HEALTH_DIR = REPO / "manifests/argocd/resource_customizations/extraction.dev/ExtractionRun"
NAMESPACE = "default"
STAGE_ACCOUNT = "extraction-stage"
IMAGE = "busybox:1.36"
CRD = "extractionruns.extraction.dev"
KOPF_ANNOTATIONS = "kopf.extraction.dev/"
OPERATOR_INSTANCE = "extraction-operator-capture"  # POD_ID: reconciledBy names no real host

JSON = dict[str, Any]

# ------------------------------------------------------------------------------------ the runs


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


CHUNK = {"name": "chunk", "command": sh("echo 'split 120 documents into 480 chunks'")}
SLEEP = sh("sleep 600")
PROVIDER_DOWN = sh("echo 'provider returned HTTP 503 Service Unavailable' >&2; exit 1")
BREAKER = {"failureThreshold": 5, "recoveryTimeoutSeconds": 3600, "probeTimeoutSeconds": 120}


def run(name: str, stages: list[JSON], annotations: JSON | None = None, **spec: Any) -> JSON:
    """An ExtractionRun as a user would write it."""
    metadata: JSON = {"name": name, "namespace": NAMESPACE}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": metadata,
        "spec": {
            "image": IMAGE,
            "serviceAccountName": STAGE_ACCOUNT,
            **spec,
            "stages": stages,
        },
    }


def open_circuit_annotation(now: float | None = None) -> JSON:
    """The shared breaker document (docs/circuit-breakers.md) with circuit `llm` just opened."""
    opened = (time.time() if now is None else now) - 1.0
    circuit = {
        "state": "open",
        "failures": BREAKER["failureThreshold"],
        "successes": 0,
        "generation": 1,
        "opens": 1,
        "openedAt": format_timestamp(opened),
        "lastError": "provider returned HTTP 503 Service Unavailable",
    }
    return {ANNOTATION_BREAKERS: json.dumps({"v": 1, "circuits": {"llm": circuit}})}


def running_run(name: str) -> JSON:
    """`chunk` succeeds, then `extract` runs for ten minutes."""
    return run(name, [CHUNK, {"name": "extract", "command": SLEEP, "dependsOn": ["chunk"]}])


def succeeded_run(name: str) -> JSON:
    """A fan-out: `chunk`, two `extract` shards, `merge`; everything succeeds."""
    return run(
        name,
        [
            CHUNK,
            {
                "name": "extract",
                "command": sh('echo "shard $SHARD_INDEX of $SHARD_COUNT: 240 records"'),
                "dependsOn": ["chunk"],
                "shards": 2,
            },
            {"name": "merge", "command": sh("echo 'merged 480 records'"), "dependsOn": ["extract"]},
        ],
    )


def failed_run(name: str) -> JSON:
    """`extract` fails with no retry left (retry.limit 0); `merge` is skipped (failFast)."""
    return run(
        name,
        [
            CHUNK,
            {
                "name": "extract",
                "command": PROVIDER_DOWN,
                "dependsOn": ["chunk"],
                "retry": {"limit": 0},
            },
            {"name": "merge", "command": sh("echo merged"), "dependsOn": ["extract"]},
        ],
    )


def waiting_run(name: str) -> JSON:
    """`extract` failed its first attempt and waits ten minutes for its retry."""
    backoff = {"initialSeconds": 600, "factor": 2, "maxSeconds": 600, "jitter": "none"}
    return run(
        name,
        [CHUNK, {"name": "extract", "command": PROVIDER_DOWN, "dependsOn": ["chunk"]}],
        retry={"limit": 3, "backoff": backoff},
    )


def blocked_run(name: str) -> JSON:
    """`chunk` succeeds; `extract` is held by the open circuit `llm` (an hour's recovery)."""
    return run(
        name,
        [CHUNK, {"name": "extract", "command": SLEEP, "dependsOn": ["chunk"], "circuits": ["llm"]}],
        annotations=open_circuit_annotation(),
        circuitBreakers={"llm": BREAKER},
    )


def pending_run(name: str) -> JSON:
    """Nothing launched yet: the only root stage waits for the open circuit `llm`."""
    return run(
        name,
        [{"name": "extract", "command": SLEEP, "circuits": ["llm"]}],
        annotations=open_circuit_annotation(),
        circuitBreakers={"llm": BREAKER},
    )


def invalid_run(name: str) -> JSON:
    """A dependency cycle: every dependsOn names a stage of the run, so the CRD's CEL rules
    admit it; the operator's graph check rejects it (Stalled, reason InvalidSpec)."""
    return run(
        name,
        [
            {"name": "mentions", "command": sh("echo mentions"), "dependsOn": ["entities"]},
            {"name": "entities", "command": sh("echo entities"), "dependsOn": ["mentions"]},
        ],
    )


def not_started_run(name: str) -> JSON:
    """`extract`'s pod cannot be created: its ServiceAccount does not exist (FailedCreate)."""
    manifest = run(name, [{"name": "extract", "command": SLEEP}])
    manifest["spec"]["serviceAccountName"] = "extraction-missing"
    return manifest


# ------------------------------------------------------------------------------ reading a run


def get_run(kube: Kubectl, name: str) -> JSON:
    return kube.json("get", "extractionrun", name, "-n", NAMESPACE)


def _status(obj: JSON) -> JSON:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def node(obj: JSON, key: str) -> JSON:
    return _status(obj).get("nodes", {}).get(key, {})


def condition(obj: JSON, kind: str) -> JSON:
    for item in _status(obj).get("conditions", []):
        if item.get("type") == kind:
            return dict(item)
    return {}


def in_phase(phase: str, check: Callable[[JSON], bool] = lambda _: True) -> Callable[[JSON], bool]:
    return lambda obj: _status(obj).get("phase") == phase and check(obj)


def node_in(key: str, phase: str, reason: str | None = None) -> Callable[[JSON], bool]:
    def check(obj: JSON) -> bool:
        state = node(obj, key)
        return state.get("phase") == phase and (reason is None or state.get("reason") == reason)

    return check


def both(*checks: Callable[[JSON], bool]) -> Callable[[JSON], bool]:
    return lambda obj: all(check(obj) for check in checks)


def conditions_are(ready: str, reconciling: str, stalled: str) -> Callable[[JSON], bool]:
    return lambda obj: (
        (
            condition(obj, "Ready").get("status"),
            condition(obj, "Reconciling").get("status"),
            condition(obj, "Stalled").get("status"),
        )
        == (ready, reconciling, stalled)
    )


def stalled_because(reason: str) -> Callable[[JSON], bool]:
    return lambda obj: condition(obj, "Stalled").get("reason") == reason


def await_state(kube: Kubectl, name: str, check: Callable[[JSON], bool], timeout: float) -> JSON:
    def probe() -> JSON | None:
        obj = get_run(kube, name)
        return obj if check(obj) else None

    try:
        return wait_for(f"run {name} to reach its state", probe, timeout)
    except AssertionError as error:
        seen = json.dumps(_status(get_run(kube, name)), indent=1)[:3000]
        raise AssertionError(f"{error}; its status is now {seen}") from None


def clean(obj: JSON) -> JSON:
    """The object as Argo CD sees it, without what only adds noise to a test fixture."""
    metadata = dict(obj["metadata"])
    for key in ("managedFields", "uid", "resourceVersion", "selfLink"):
        metadata.pop(key, None)
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if not key.startswith(KOPF_ANNOTATIONS)
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**obj, "metadata": metadata}


# ------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One testdata file: the run it comes from, and the health Argo CD must give it."""

    file: str
    health: str
    about: str
    # None: the message is the run's own `status.message`.
    message: str | None = None


CASES = {
    "pending": Case(
        "pending.yaml", "Progressing", "Pending: nothing launched, the first stage awaits a circuit"
    ),
    "running": Case("running.yaml", "Progressing", "Running: a stage is running"),
    "not-started": Case(
        "running_stage_not_started.yaml",
        "Progressing",
        "Running: a stage's pod cannot be created (FailedCreate), within its start deadline",
    ),
    "waiting": Case("waiting.yaml", "Progressing", "Running: a failed stage waits for its retry"),
    "blocked": Case("blocked.yaml", "Progressing", "Running: a stage is held by an open circuit"),
    "suspended": Case("suspended.yaml", "Suspended", "Suspended: spec.suspend set mid-run"),
    "succeeded": Case("succeeded.yaml", "Healthy", "Succeeded: every node succeeded"),
    "failed": Case("failed.yaml", "Degraded", "Failed: a stage failed with no retry left"),
    "invalid-spec": Case(
        "invalid_spec.yaml", "Degraded", "Stalled, reason InvalidSpec: a dependency cycle"
    ),
    "stale-generation": Case(
        "stale_generation.yaml",
        "Progressing",
        "status.observedGeneration 1 < metadata.generation 2: the spec changed while the "
        "operator was stopped",
        "waiting for the operator to observe generation 2",
    ),
    "no-status": Case(
        "no_status.yaml",
        "Progressing",
        "No status written by the operator yet (created while it was stopped): the CRD's "
        "default status {observedGeneration: 0}",
        "waiting for the operator to observe generation 1",
    ),
    "no-status-without-default": Case(
        "no_status_without_default.yaml",
        "Progressing",
        "No status at all: a run the operator has not seen, under a CRD without the status default",
        "waiting for the operator to report the run's status",
    ),
}


def expected_health(case: Case, obj: JSON) -> JSON:
    message = case.message if case.message is not None else _status(obj)["message"]
    return {"status": case.health, "message": message}


def write_case(out: Path, case: Case, obj: JSON) -> None:
    header = f"# {case.about}.\n# Captured from a real run by tests/gitops/capture_testdata.py.\n"
    body = yaml.safe_dump(clean(obj), sort_keys=False, default_flow_style=False, width=100)
    (out / "testdata" / case.file).write_text(header + body)


def write_health_test(out: Path, captured: dict[str, JSON]) -> None:
    tests = [
        {"healthStatus": expected_health(CASES[name], obj), "inputPath": f"testdata/{case.file}"}
        for name, case in CASES.items()
        if (obj := captured.get(name)) is not None
    ]
    header = (
        "# Generated with the testdata by tests/gitops/capture_testdata.py: the health of each\n"
        "# captured run, as documented in docs/gitops.md.\n"
    )
    body = yaml.safe_dump({"tests": tests}, sort_keys=False, width=100)
    (out / "health_test.yaml").write_text(header + body)


# ---------------------------------------------------------------------------------- the tier


@contextmanager
def real_tier(workdir: Path) -> Iterator[Kubectl]:
    """The real control plane and the process node, with the CRD, the stage ServiceAccount and
    the admission policies installed (the operator is started separately)."""
    from extraction_operator.controlplane.build import build
    from extraction_operator.controlplane.cluster import ControlPlane
    from extraction_operator.controlplane.node import process_node

    binaries = build()
    with (
        ControlPlane(binaries, state_dir=workdir / "controlplane") as plane,
        process_node(plane, workdir / "node", restart_backoff=(1.0, 10.0)),
    ):
        kube = Kubectl(plane.admin_kubeconfig)
        for kustomization in ("crds", "manifests/stage", "manifests/admission"):
            kube.run("apply", "-k", str(REPO / kustomization), timeout=120)
        kube.run("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s", timeout=70)
        yield kube


class Operator:
    """`python -m extraction_operator run` against the tier, as benchmarks/outage.py runs it."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "extraction_operator", "run",
                 "--kubeconfig", str(self.kubeconfig), "--metrics-port", "0", "--liveness", "",
                 "--resync-seconds", "1", "--log-level", "warning"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "POD_ID": OPERATOR_INSTANCE},
                start_new_session=True,
            )  # fmt: skip
        return self

    def stop(self, grace: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)


# ------------------------------------------------------------------------------- the capture


def create(kube: Kubectl, manifest: JSON) -> None:
    kube.run("create", "-f", "-", stdin=yaml.safe_dump(manifest))


def patch(kube: Kubectl, name: str, change: JSON) -> None:
    kube.run(
        "patch", "extractionrun", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(change)
    )


STATUS_DEFAULT_REMOVED = {
    "op": "remove",
    "path": "/spec/versions/0/schema/openAPIV3Schema/properties/status/default",
}


def capture(kube: Kubectl, operator: Operator, timeout: float = 90.0) -> dict[str, JSON]:
    """Drive one run into each case's state and return the runs, by case name."""
    captured: dict[str, JSON] = {}

    def settle(name: str, check: Callable[[JSON], bool]) -> None:
        captured[name] = await_state(kube, name, check, timeout)
        print(f"  {name}: {_status(captured[name]).get('phase')}", flush=True)

    builders = {
        "pending": pending_run,
        "running": running_run,
        "not-started": not_started_run,
        "waiting": waiting_run,
        "blocked": blocked_run,
        "suspended": running_run,
        "succeeded": succeeded_run,
        "failed": failed_run,
        "invalid-spec": invalid_run,
        "stale-generation": running_run,
    }
    for name, build_run in builders.items():
        create(kube, build_run(name))

    running = both(node_in("chunk", "Succeeded"), node_in("extract", "Running"))
    progressing = conditions_are("False", "True", "False")
    settle("pending", in_phase("Pending", both(node_in("extract", "Blocked"), progressing)))
    settle("running", in_phase("Running", both(running, progressing)))
    settle("not-started", in_phase("Running", node_in("extract", "Pending", "FailedCreate")))
    settle("waiting", in_phase("Running", both(node_in("extract", "Waiting"), progressing)))
    held = both(node_in("chunk", "Succeeded"), node_in("extract", "Blocked", "CircuitOpen"))
    settle("blocked", in_phase("Running", both(held, progressing)))
    await_state(kube, "suspended", in_phase("Running", running), timeout)
    patch(kube, "suspended", {"spec": {"suspend": True}})
    settle("suspended", in_phase("Suspended", conditions_are("False", "False", "False")))
    settle("succeeded", in_phase("Succeeded", conditions_are("True", "False", "False")))
    stalled = conditions_are("False", "False", "True")
    settle("failed", in_phase("Failed", both(node_in("merge", "Skipped"), stalled)))
    settle("invalid-spec", in_phase("Pending", both(stalled, stalled_because("InvalidSpec"))))
    await_state(kube, "stale-generation", in_phase("Running", running), timeout)

    # What the operator has not judged yet: it is stopped, then the spec of a run in flight
    # changes (a GitOps commit suspending it) and a new run appears.
    operator.stop()
    patch(kube, "stale-generation", {"spec": {"suspend": True}})
    create(kube, running_run("no-status"))
    stale = get_run(kube, "stale-generation")
    assert stale["metadata"]["generation"] == 2, stale["metadata"]
    assert _status(stale)["observedGeneration"] == 1, _status(stale)
    captured["stale-generation"] = stale
    captured["no-status"] = get_run(kube, "no-status")
    assert captured["no-status"].get("status") == {"observedGeneration": 0}, captured["no-status"]
    print("  stale-generation, no-status: captured with the operator stopped", flush=True)

    # The same, served by a CRD without the status default: no status at all. The default is
    # applied when the API server reads an object, so once the patched CRD is in effect the run
    # above reads without a status too; the tier is thrown away afterwards.
    kube.run("patch", "crd", CRD, "--type=json", "-p", json.dumps([STATUS_DEFAULT_REMOVED]))
    await_state(kube, "no-status", lambda obj: "status" not in obj, timeout)
    create(kube, running_run("no-status-without-default"))
    captured["no-status-without-default"] = get_run(kube, "no-status-without-default")
    assert "status" not in captured["no-status-without-default"]
    print("  no-status-without-default: captured with the CRD's status default removed", flush=True)
    return captured


def check_messages(captured: dict[str, JSON]) -> None:
    """The operator writes its summary into the deciding condition too; the expected messages
    rely on that, so a capture that breaks it fails here rather than in the test."""
    for name, obj in captured.items():
        if CASES[name].message is not None:
            continue
        summary = _status(obj)["message"]
        for kind in ("Ready", "Reconciling", "Stalled"):
            assert condition(obj, kind).get("message") == summary, (name, kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HEALTH_DIR, help="health check directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    (out / "testdata").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="argocd-capture-") as tmp:
        workdir = Path(tmp)
        with real_tier(workdir) as kube:
            print(f"tier up after {time.monotonic() - started:.0f} s", flush=True)
            operator = Operator(kube.kubeconfig, workdir / "operator.log").start()
            try:
                captured = capture(kube, operator)
            except BaseException:
                print((workdir / "operator.log").read_text(errors="replace")[-6000:])
                raise
            finally:
                operator.stop()
    check_messages(captured)
    for name, obj in captured.items():
        write_case(out, CASES[name], obj)
    write_health_test(out, captured)
    print(f"wrote {len(captured)} cases to {out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
