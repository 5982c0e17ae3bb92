"""Real stage processes sharing breakers through the run's annotation on the API emulator.

Each test creates its own ExtractionRun; stage processes are `stage_worker.py` (the SDK) or
`extraction-operator guard`, configured only through the env the operator would set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from extraction_operator.api.constants import ANNOTATION_BREAKERS, GROUP, PLURAL, VERSION
from extraction_operator.breaker.configs import ConfigResolver
from extraction_operator.breaker.document import parse_document
from extraction_operator.breaker.kube import KubernetesRunApi
from extraction_operator.breaker.runtime import SharedBreaker
from extraction_operator.breaker.store import BreakerStore
from extraction_operator.localcluster.apiserver import ApiServerThread
from extraction_operator.stage import EXIT_CIRCUIT_OPEN

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("stage_worker.py")
NAMESPACE = "default"


# ------------------------------------------------------------------------------ fake provider


@dataclass
class FakeProvider:
    """Counts calls per path. `/ok` answers 200, `/fail` 503, `/hold` waits until released."""

    url: str = ""
    calls: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    hold_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def count(self, path: str) -> int:
        with self.lock:
            return self.calls.get(path, 0)

    def wait_for_calls(self, path: str, n: int, timeout: float = 30) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self.count(path) >= n, timeout), (path, n)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    state = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            with state.lock:
                state.calls[path] = state.calls.get(path, 0) + 1
            with state.arrived:
                state.arrived.notify_all()
            status = 200
            if path == "/fail":
                status = 503
            elif path == "/hold":
                state.release.wait(30)
                status = state.hold_status
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:  # the caller was killed mid-call
                pass

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------------------------- cluster


@dataclass
class Cluster:
    server: ApiServerThread
    kubeconfig: Path
    api_client: Any

    def objects(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def create_run(self, circuits: dict[str, Any] | None = None) -> str:
        name = f"run-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ExtractionRun",
            "metadata": {"name": name},
            "spec": {
                "image": "example/extractor:1",
                "circuitBreakers": {"llm": {}, **(circuits or {})},
                "stages": [{"name": "llm-stage", "command": ["true"], "circuits": ["llm"]}],
            },
        }
        self.objects().create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        return name

    def annotation(self, run: str) -> str | None:
        obj = self.objects().get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, run)
        value: str | None = (obj["metadata"].get("annotations") or {}).get(ANNOTATION_BREAKERS)
        return value

    def set_annotation(self, run: str, value: str) -> None:
        patch = {"metadata": {"annotations": {ANNOTATION_BREAKERS: value}}}
        self.objects().patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, run, patch,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def llm(self, run: str) -> dict[str, Any]:
        raw = self.annotation(run)
        circuit: dict[str, Any] = json.loads(raw or '{"circuits":{}}')["circuits"].get("llm", {})
        return circuit

    def breaker(self, run: str, config: dict[str, Any]) -> SharedBreaker:
        """A breaker in the test process, as another pod of the run would have."""
        from extraction_operator.breaker.configs import parse_config_map

        configs, _ = parse_config_map({"llm": config}, "test")
        store = BreakerStore(KubernetesRunApi(NAMESPACE, run, api_client=self.api_client))
        return SharedBreaker(store, ConfigResolver(configs), holder="test-process")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from kubernetes import client, config

    with ApiServerThread() as server:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
        )
        api_client = client.ApiClient(configuration)
        crd = yaml.safe_load((REPO / "crds" / "extractionruns.yaml").read_text())
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
        try:
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
            client.CoreV1Api(api_client).create_namespace(namespace)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        deadline = time.time() + 10
        while True:  # the CRD becomes servable asynchronously on a real API server
            try:
                client.CustomObjectsApi(api_client).list_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL
                )
                break
            except client.ApiException:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        yield Cluster(server, Path(kubeconfig), api_client)


def stage_env(
    cluster: Cluster, run: str, config: dict[str, Any], tmp: Path, index: int
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXTRACTION_", "KUBERNETES_SERVICE"))
    }
    env.update(
        KUBECONFIG=str(cluster.kubeconfig),
        EXTRACTION_RUN=run,
        EXTRACTION_NAMESPACE=NAMESPACE,
        EXTRACTION_CIRCUITS=json.dumps({"llm": config}),
        EXTRACTION_NODE=f"llm-stage[{index}]",
        EXTRACTION_ATTEMPT="1",
        HOSTNAME=f"{run}-pod-{index}",
        TERMINATION_MESSAGE_PATH=str(tmp / f"termination-{index}"),
    )
    return env


def spawn(cluster: Cluster, run: str, config: dict[str, Any], tmp: Path, index: int,
          *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, str(WORKER), *argv],
        env={**stage_env(cluster, run, config, tmp, index), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    out, err = process.communicate(timeout=90)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no statistics from worker (exit {process.returncode}): {err}"
    stats: dict[str, Any] = json.loads(lines[-1])
    return process.returncode, stats


def start_together(
    processes: list[subprocess.Popen[str]], tmp: Path, go: Path, not_before: float = 0.0
) -> None:
    """Wait until every process is warmed up (and `not_before` has passed), then let them go."""
    deadline = time.time() + 60
    while sum(1 for i in range(len(processes)) if (tmp / f"ready-{i}").exists()) < len(processes):
        assert time.time() < deadline, "workers did not get ready"
        for process in processes:
            assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    time.sleep(max(0.0, not_before - time.time()))
    go.write_text("go")


# --------------------------------------------------------------------------------- the tests


def test_twenty_processes_lose_no_update_and_open_once(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """20 processes x 50 timeouts with failureThreshold 500: every failure a process saw applied
    is in the document, the circuit opened exactly once, and later results were stale."""
    config = {"failureThreshold": 500, "recoveryTimeoutSeconds": 3600}
    run = cluster.create_run()
    go = tmp_path / "go"
    workers = [
        spawn(cluster, run, config, tmp_path, i, "record", "50",
              "--ready", str(tmp_path / f"ready-{i}"), "--go", str(go))
        for i in range(20)
    ]  # fmt: skip
    start_together(workers, tmp_path, go)
    results = [finish(worker) for worker in workers]
    assert [code for code, _ in results] == [0] * 20
    stats = [s for _, s in results]
    applied = sum(s["applied"] for s in stats)
    accounted = sum(
        s["applied"] + s["stale_ignored"] + s["fast_failed"] + s["bookkeeping_failures"]
        for s in stats
    )
    conflicts = sum(s["conflicts_retried"] for s in stats)
    with capsys.disabled():
        print(f"\n20x50 outcomes: {applied} applied, {conflicts} conflicts retried, "
              f"{sum(s['bookkeeping_failures'] for s in stats)} over the retry budget")  # fmt: skip
    llm = cluster.llm(run)
    assert accounted == 20 * 50
    assert llm["failures"] == applied == 500
    assert llm["state"] == "open"
    assert llm["opens"] == 1
    assert llm["generation"] == 1


def _resource_version(cluster: Cluster, run: str) -> str:
    obj = cluster.objects().get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, run)
    return str(obj["metadata"]["resourceVersion"])


def test_healthy_calls_cost_one_read_a_second_and_no_writes(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    config = {"failureThreshold": 5}
    run = cluster.create_run()
    before = _resource_version(cluster, run)
    worker = spawn(cluster, run, config, tmp_path, 0, "healthy", "200", f"{provider.url}/ok")
    code, stats = finish(worker)
    assert code == 0
    assert provider.count("/ok") == 200
    requests = cluster.server.request_log.records(name=run, resource=PLURAL)
    # The SDK reads through an empty merge patch (admission judges it; a GET it may not do):
    # one when the process starts, then at most one per second of calls, and none of them
    # changes the run.
    assert {r.verb for r in requests} <= {"patch", "get"}
    reads = [r for r in requests if r.verb == "patch"]
    assert len(reads) <= 2 + int(stats["seconds"])
    assert _resource_version(cluster, run) == before
    assert cluster.annotation(run) is None


def open_run(cluster: Cluster, config: dict[str, Any], opened_at: float) -> str:
    run = cluster.create_run()
    doc = {
        "v": 1,
        "circuits": {
            "llm": {"state": "open", "failures": 3, "openedAt": opened_at, "generation": 1,
                    "opens": 1, "lastError": "HTTPError: 503"},
        },
    }  # fmt: skip
    cluster.set_annotation(run, json.dumps(doc))
    return run


def test_twenty_waiting_processes_send_exactly_one_probe(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    config = {"failureThreshold": 3, "recoveryTimeoutSeconds": 1, "probeTimeoutSeconds": 30}
    opened_at = time.time()
    run = open_run(cluster, config, opened_at=opened_at)
    go = tmp_path / "go"
    workers = [
        spawn(cluster, run, config, tmp_path, i, "call", f"{provider.url}/hold",
              "--ready", str(tmp_path / f"ready-{i}"), "--go", str(go))
        for i in range(20)
    ]  # fmt: skip
    # All 20 wait (warmed up, having seen the open circuit) until the recovery time has passed.
    start_together(workers, tmp_path, go, not_before=opened_at + 1)
    # The probe is held at the provider while all the others run into the open circuit and exit.
    provider.wait_for_calls("/hold", 1)
    deadline = time.time() + 60
    while sum(worker.poll() is not None for worker in workers) < 19 and time.time() < deadline:
        time.sleep(0.05)
    still_running = [worker for worker in workers if worker.poll() is None]
    assert len(still_running) == 1, "exactly one process must be inside the provider call"
    prober = still_running[0]
    others = [finish(worker) for worker in workers if worker is not prober]
    assert [code for code, _ in others] == [EXIT_CIRCUIT_OPEN] * 19
    assert provider.count("/hold") == 1
    provider.release.set()
    code, stats = finish(prober)
    assert (code, stats["probes"], stats["outcome"]) == (0, 1, "ok")
    llm = cluster.llm(run)
    assert llm["state"] == "closed"
    assert provider.count("/hold") == 1


def test_killed_prober_lease_expires_and_another_probe_runs(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    config = {"failureThreshold": 3, "recoveryTimeoutSeconds": 1, "probeTimeoutSeconds": 2}
    run = open_run(cluster, config, opened_at=time.time() - 1)
    doomed = spawn(cluster, run, config, tmp_path, 0, "call", f"{provider.url}/hold")
    provider.wait_for_calls("/hold", 1)
    lease = cluster.llm(run)["probe"]
    assert lease["holder"].startswith(f"{run}-pod-0")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    # While the dead prober's lease lives, others fail fast and learn when to retry.
    early = spawn(cluster, run, config, tmp_path, 1, "call", f"{provider.url}/ok")
    code, stats = finish(early)
    if code == EXIT_CIRCUIT_OPEN:
        assert stats["outcome"] == "circuit-open"
        assert cluster.llm(run)["probe"]["nonce"] == lease["nonce"]
        assert "open until" in (tmp_path / "termination-1").read_text()
        # Wait out the lease, as the operator does with the retry time it reads.
        expires_at = parse_document(cluster.annotation(run))[0].circuit("llm").probe
        assert expires_at is not None
        time.sleep(max(0.0, expires_at.expires_at - time.time()) + 0.05)
        late = spawn(cluster, run, config, tmp_path, 2, "call", f"{provider.url}/ok")
        code, stats = finish(late)
    # Either way a second probe ran (after the lease expired) and closed the circuit.
    assert (code, stats["probes"], stats["outcome"]) == (0, 1, "ok")
    assert provider.count("/ok") == 1
    llm = cluster.llm(run)
    assert llm["state"] == "closed"
    assert "probe" not in llm


def test_result_of_call_begun_before_opening_does_not_change_new_state(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    config = {"failureThreshold": 2, "recoveryTimeoutSeconds": 3600}
    run = cluster.create_run()
    provider.hold_status = 503
    slow = spawn(cluster, run, config, tmp_path, 0, "call", f"{provider.url}/hold")
    provider.wait_for_calls("/hold", 1)
    other_pod = cluster.breaker(run, config)
    for _ in range(2):
        other_pod.fail(other_pod.begin("llm"), "TimeoutError")
    opened = cluster.annotation(run)
    assert cluster.llm(run)["state"] == "open"
    provider.release.set()  # the slow call now fails with 503, a counting failure
    code, stats = finish(slow)
    assert (code, stats["outcome"], stats["stale_ignored"]) == (0, "http 503", 1)
    assert cluster.annotation(run) == opened


@pytest.mark.parametrize(
    "annotation",
    ["{definitely not json", '{"v": 99, "circuits": {"llm": {"state": "open"}}}', '"just a string"',
     '{"v": 1, "circuits": {"llm": {"state": "open", "failures": "many"}}}'],
)  # fmt: skip
def test_malformed_annotation_leaves_stage_running_and_is_rewritten(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path, annotation: str
) -> None:
    config = {"failureThreshold": 5}
    run = cluster.create_run()
    cluster.set_annotation(run, annotation)
    ok = spawn(cluster, run, config, tmp_path, 0, "call", f"{provider.url}/ok")
    assert finish(ok)[0] == 0
    assert cluster.annotation(run) == annotation  # a healthy success writes nothing
    failing = spawn(cluster, run, config, tmp_path, 1, "call", f"{provider.url}/fail")
    code, stats = finish(failing)
    assert (code, stats["outcome"]) == (0, "http 503")
    rewritten, problem = parse_document(cluster.annotation(run))
    assert problem is None
    assert rewritten.circuit("llm").failures == 1


@pytest.mark.parametrize("status", [409, 422])
def test_conflict_storm_beyond_budget_leaves_stage_running(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path, status: int
) -> None:
    """409 (merge-patch precondition) and 422 (JSON-patch test) are both conflicts. The storm
    starts once the worker has read its run (reads are patches too) and is in its call."""
    config = {"failureThreshold": 5}
    run = cluster.create_run()
    provider.hold_status = 503
    env = {"EXTRACTION_BREAKER_MAX_ATTEMPTS": "6"}  # the default budget, 16, takes ~6 s
    failing = spawn(cluster, run, config, tmp_path, 0, "call", f"{provider.url}/hold", env=env)
    provider.wait_for_calls("/hold", 1)
    rule = cluster.server.faults.fail("patch", PLURAL, name=run, times=None, status=status,
                                      message="injected conflict storm")  # fmt: skip
    try:
        provider.release.set()
        code, stats = finish(failing)
    finally:
        cluster.server.faults.clear()
    assert rule is not None
    assert (code, stats["outcome"]) == (0, "http 503")
    assert stats["bookkeeping_failures"] == 1
    assert stats["conflicts_retried"] == 5
    assert cluster.annotation(run) is None


def test_recreated_run_with_another_uid_is_not_written(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    config = {"failureThreshold": 5}
    run = cluster.create_run()
    env = {"EXTRACTION_RUN_UID": "uid-of-a-deleted-run"}
    failing = spawn(cluster, run, config, tmp_path, 0, "call", f"{provider.url}/fail", env=env)
    code, stats = finish(failing)
    assert (code, stats["outcome"], stats["bookkeeping_failures"]) == (0, "http 503", 1)
    assert cluster.annotation(run) is None


def test_hanging_api_server_leaves_stage_running(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    """Every request on the run hangs: the SDK gives up after its request timeout, pauses its
    bookkeeping instead of retrying per call, and the stage finishes its provider calls."""
    config = {"failureThreshold": 5}
    run = cluster.create_run()
    cluster.server.faults.hang(None, PLURAL, name=run, times=None)
    try:
        failing = spawn(cluster, run, config, tmp_path, 0, "call", f"{provider.url}/fail")
        code, stats = finish(failing)
    finally:
        cluster.server.faults.clear()
        cluster.server.faults.release()
    assert (code, stats["outcome"], stats["bookkeeping_failures"]) == (0, "http 503", 1)
    assert provider.count("/fail") == 1


def test_unreachable_api_server_leaves_stage_running(
    cluster: Cluster, provider: FakeProvider, tmp_path: Path
) -> None:
    config = {"failureThreshold": 5}
    run = cluster.create_run()
    env = stage_env(cluster, run, config, tmp_path, 0)
    env["KUBECONFIG"] = str(tmp_path / "unreachable")
    text = cluster.kubeconfig.read_text()
    url = cluster.server.url
    (tmp_path / "unreachable").write_text(text.replace(url, "http://127.0.0.1:9"))
    done = subprocess.run(
        [sys.executable, str(WORKER), "call", f"{provider.url}/fail"],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["outcome"] == "http 503"


# ----------------------------------------------------------------------------------- guard


def guard(cluster: Cluster, run: str, config: dict[str, Any], tmp: Path, *argv: str) -> int:
    env = stage_env(cluster, run, config, tmp, 0)
    command = [sys.executable, "-m", "extraction_operator", "guard", "--circuit", "llm", *argv]
    return subprocess.run(command, env=env, timeout=60).returncode


def test_guard_records_failure_codes_and_exits_75_when_open(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = {"failureThreshold": 2, "recoveryTimeoutSeconds": 3600}
    run = cluster.create_run()
    exit_with = [sys.executable, "-c", "import sys; sys.exit(int(sys.argv[1]))"]
    flags = ["--failure-exit-codes", "3,4"]
    assert guard(cluster, run, config, tmp_path, *flags, "--", *exit_with, "7") == 7
    assert cluster.annotation(run) is None
    assert guard(cluster, run, config, tmp_path, *flags, "--", *exit_with, "3") == 3
    assert cluster.llm(run)["failures"] == 1
    assert guard(cluster, run, config, tmp_path, *flags, "--", *exit_with, "0") == 0
    assert cluster.llm(run)["failures"] == 0
    for _ in range(2):
        assert guard(cluster, run, config, tmp_path, *flags, "--", *exit_with, "4") == 4
    assert cluster.llm(run)["state"] == "open"
    marker = tmp_path / "ran"
    touch = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    assert guard(cluster, run, config, tmp_path, *flags, "--", *touch) == EXIT_CIRCUIT_OPEN
    assert not marker.exists()
