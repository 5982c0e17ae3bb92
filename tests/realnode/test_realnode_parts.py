"""The process node's parts on their own, without a cluster: documents, rules, and faults."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from extraction_operator.localcluster.kubeapi import ApiClient, ApiError
from extraction_operator.localcluster.kubeconfig import (
    ClientConfig,
    KubeconfigError,
    load_kubeconfig,
)
from extraction_operator.localcluster.kubelet import Kubelet
from extraction_operator.localcluster.mountns import MountNamespaces, below_root
from extraction_operator.localcluster.node import _ca_file
from extraction_operator.localcluster.nodesetup import NodePodSetup, in_cluster_env
from extraction_operator.localcluster.nodestatus import (
    NodeConfig,
    NodeHeartbeat,
    lease_manifest,
    microtime,
    node_manifest,
)
from extraction_operator.localcluster.podspec import (
    Mount,
    PodConfigError,
    PodPaths,
    PodSpecError,
)
from extraction_operator.localcluster.podstatus import PodRun, keep_server_fields
from extraction_operator.localcluster.projected import IssuedToken, VolumeWriter
from extraction_operator.localcluster.provisioner import (
    PROVISIONED_BY,
    PROVISIONER,
    _remove_volume_dir,
    reclaimable,
    volume_for,
    wants_volume,
)
from extraction_operator.localcluster.testing import wait_for
from extraction_operator.localcluster.watchcache import WatchCache

pytestmark = pytest.mark.timeout(30)
JSON = dict[str, Any]


# ---- kubeconfig and client -----------------------------------------------------------------------


def write_config(path: Path, user: JSON, cluster: JSON | None = None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})}}
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "kc",
        {"client-certificate": "pki/node.crt", "client-key": "/abs/node.key"},
        {"certificate-authority": "pki/ca.crt"},
    )
    config = load_kubeconfig(path)
    assert config.server == "https://127.0.0.1:6443"
    assert config.namespace == "ns"
    assert config.ca_file == tmp_path / "pki" / "ca.crt"
    assert config.cert_file == tmp_path / "pki" / "node.crt"
    assert config.key_file == Path("/abs/node.key")
    assert config.token is None


def test_kubeconfig_inline_data_and_tokens(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\n"
    path = write_config(
        tmp_path / "kc",
        {"token": "abc", "tokenFile": "token", "client-key-data": base64.b64encode(b"k").decode()},
        {"certificate-authority-data": base64.b64encode(pem).decode(),
         "insecure-skip-tls-verify": True},
    )  # fmt: skip
    config = load_kubeconfig(path)
    assert (config.token, config.token_file) == ("abc", tmp_path / "token")
    assert (config.ca_data, config.key_data, config.insecure) == (pem.decode(), b"k", True)
    with pytest.raises(KubeconfigError, match="no context named 'other'"):
        load_kubeconfig(path, context="other")


async def test_client_rereads_a_rotated_token_file(tmp_path: Path) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/version", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    token = tmp_path / "token"
    token.write_text("first\n")
    client = ApiClient(f"http://127.0.0.1:{port}", token_file=token)
    try:
        await client.get("/version")
        replacement = tmp_path / "token.new"
        replacement.write_text("second")
        replacement.replace(token)  # as the node rotates it: a new file renamed into place
        await client.get("/version")
        await client.get("/version")
    finally:
        await client.close()
        await runner.cleanup()
    assert seen == ["Bearer first", "Bearer second", "Bearer second"]


# ---- pod status ----------------------------------------------------------------------------------


def test_keep_server_fields_keeps_pod_scheduled_foreign_conditions_and_qos() -> None:
    scheduler = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"}
    gate = {"type": "example.com/Gate", "status": "True"}
    current = {"conditions": [scheduler, gate], "qosClass": "Burstable"}
    ours = [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True",
                                                   "lastTransitionTime": "T9"}]  # fmt: skip
    kept = keep_server_fields(current, {"conditions": ours, "qosClass": "BestEffort"})
    assert kept["conditions"] == [ours[0], scheduler, gate]
    assert kept["qosClass"] == "Burstable"
    first = keep_server_fields({}, {"conditions": ours, "qosClass": "BestEffort"})
    assert first == {"conditions": ours, "qosClass": "BestEffort"}  # nobody wrote them yet


class NoClient:
    url = "http://127.0.0.1:1"


def test_bound_only_kubelet_runs_exactly_the_pods_bound_to_it(tmp_path: Path) -> None:
    client: Any = NoClient()
    cache = WatchCache(client, "/api/v1/pods", lambda *_: None)

    def kubelet(bound_only: bool) -> Kubelet:
        return Kubelet(client, cache, tmp_path, node_name="n1", grace_seconds_cap=None,
                       wake=lambda: None, bound_only=bound_only)  # fmt: skip

    def pod(node: str | None, policy: str = "Never") -> JSON:
        return {"metadata": {"uid": "u"}, "spec": {"nodeName": node, "restartPolicy": policy}}

    node, emulator = kubelet(True), kubelet(False)
    assert [node.owns(pod(n)) for n in ("n1", None, "n2")] == [True, False, False]
    assert node.owns(pod("n1", "Always"))  # a Deployment's pod: restarted in place
    assert [emulator.owns(pod(n)) for n in ("n1", None, "n2")] == [True, True, False]
    assert not emulator.owns(pod("n1", "Always"))


@pytest.mark.parametrize(
    ("bound_only", "policy", "code", "restarts"),
    [
        (True, "Always", 0, True),
        (True, "Always", 1, True),
        (True, "OnFailure", 1, True),
        (True, "OnFailure", 0, False),
        (True, "Never", 1, False),
        (False, "OnFailure", 1, False),  # the emulator's Job controller replaces the pod
    ],
)
def test_which_exits_restart_in_place(
    tmp_path: Path, bound_only: bool, policy: str, code: int, restarts: bool
) -> None:
    client: Any = NoClient()
    cache = WatchCache(client, "/api/v1/pods", lambda *_: None)
    kubelet = Kubelet(client, cache, tmp_path, node_name="n1", grace_seconds_cap=None,
                      wake=lambda: None, bound_only=bound_only)  # fmt: skip
    pod = {"metadata": {"uid": "u"}, "spec": {"restartPolicy": policy, "containers": [{}]}}
    run = PodRun("u", "ns", "p", PodPaths(tmp_path, tmp_path), pod, datetime.now(UTC))
    assert kubelet._restarts(run, code) is restarts
    run.kill_requested = True  # being stopped: never restarted
    assert kubelet._restarts(run, code) is False


# ---- node documents and heartbeats ---------------------------------------------------------------


def test_node_and_lease_documents() -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    taint = {"key": "k", "effect": "NoSchedule"}
    node = node_manifest(NodeConfig("n1", kubelet_version="v1.2.3", taints=(taint,)), now)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert node["spec"]["taints"] == [taint]
    status = node["status"]
    assert status["capacity"] == status["allocatable"]
    assert (status["capacity"]["cpu"], status["capacity"]["pods"]) == ("2", "110")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastHeartbeatTime"]) == ("True", "2030-01-02T03:04:05Z")
    assert status["nodeInfo"]["kubeletVersion"] == "v1.2.3"
    lease = lease_manifest("n1", "uid-1", now)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["spec"]["renewTime"] == microtime(now) == "2030-01-02T03:04:05.600000Z"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


class FlakyApi:
    """Fails the first `failures` patches with a 500, then answers them."""

    url = "https://127.0.0.1:1"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.patches: list[str] = []

    async def patch(self, path: str, body: Any) -> JSON:
        if self.failures:
            self.failures -= 1
            raise ApiError(500, "InternalError", "injected")
        self.patches.append(path)
        return {}


async def test_heartbeats_survive_failed_renewals() -> None:
    api = FlakyApi(failures=2)
    heartbeat = NodeHeartbeat(api, NodeConfig("n1"), interval=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(heartbeat.run())
    try:
        await wait_for(lambda: _at_least(heartbeat, 2), within=5, what="two heartbeats")
    finally:
        task.cancel()
    assert api.failures == 0
    assert api.patches[:2] == ["/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                               "/api/v1/nodes/n1/status"]  # fmt: skip


async def _at_least(heartbeat: NodeHeartbeat, beats: int) -> bool:
    return heartbeat.beats >= beats


def test_in_cluster_env_points_at_the_api_server() -> None:
    env = in_cluster_env("https://127.0.0.1:40123")
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == (
        "127.0.0.1",
        "40123",
    )


# ---- provisioner ---------------------------------------------------------------------------------


def pvc(**spec: Any) -> JSON:
    return {"metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": {"resources": {"requests": {"storage": "3Gi"}}, **spec},
            "status": {"phase": "Pending"}}  # fmt: skip


def test_volume_for_a_claim_is_pre_bound_to_it(tmp_path: Path) -> None:
    pv = volume_for(pvc(accessModes=["ReadWriteMany"], storageClassName="fast"), tmp_path, "Retain")
    spec = pv["spec"]
    assert pv["metadata"]["name"] == "pvc-u1"
    assert pv["metadata"]["annotations"] == {PROVISIONED_BY: PROVISIONER}
    assert spec["capacity"] == {"storage": "3Gi"}
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["storageClassName"] == "fast"
    assert spec["hostPath"]["path"] == str(tmp_path)
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": "ns", "name": "c", "uid": "u1"}  # fmt: skip


def test_which_claims_and_volumes_the_provisioner_acts_on() -> None:
    assert wants_volume(pvc())
    assert not wants_volume(pvc(volumeName="pv-1"))
    assert not wants_volume({**pvc(), "status": {"phase": "Bound"}})
    ours = {"metadata": {"annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {"persistentVolumeReclaimPolicy": "Delete"},
            "status": {"phase": "Released"}}  # fmt: skip
    assert reclaimable(ours)
    assert not reclaimable({**ours, "metadata": {}})  # not ours
    assert not reclaimable({**ours, "status": {"phase": "Bound"}})
    assert not reclaimable({**ours, "spec": {"persistentVolumeReclaimPolicy": "Retain"}})


def test_reclaim_never_removes_anything_outside_its_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "pvc-1").mkdir(parents=True)
    outside.mkdir()
    _remove_volume_dir(root / "pvc-1", root)
    _remove_volume_dir(outside, root)
    _remove_volume_dir(root / ".." / "outside", root)
    assert not (root / "pvc-1").exists()
    assert outside.exists()


# ---- projected volumes and tokens ----------------------------------------------------------------


class FakeApi:
    url = "https://127.0.0.1:1"

    def __init__(self, objects: dict[str, JSON], token_failures: int = 0) -> None:
        self.objects = objects
        self.token_failures = token_failures
        self.issued = 0

    async def get(self, path: str) -> JSON:
        if path not in self.objects:
            raise ApiError(404, "NotFound", path)
        return self.objects[path]

    async def create(self, path: str, body: JSON) -> JSON:
        assert path.endswith("/token")
        if self.token_failures:
            self.token_failures -= 1
            raise ApiError(503, "ServiceUnavailable", "injected")
        self.issued += 1
        ref = body["spec"]["boundObjectRef"]
        return {"status": {"token": f"token-{self.issued}-{ref['name']}-{ref['uid']}",
                           "expirationTimestamp": "2099-01-01T00:00:00Z"}}  # fmt: skip


POD: JSON = {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-p"},
             "spec": {"serviceAccountName": "sa", "containers": [{"name": "main"}]}}  # fmt: skip
ACCESS_VOLUME: JSON = {"name": "kube-api-access", "projected": {"sources": [
    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace",
                                "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
]}}  # fmt: skip
CA_PATH = "/api/v1/namespaces/ns/configmaps/kube-root-ca.crt"


async def test_service_account_volume_is_written_like_a_kubelets(tmp_path: Path) -> None:
    api = FakeApi({CA_PATH: {"data": {"ca.crt": "PEM"}}})
    writer = VolumeWriter(api, "n1")  # type: ignore[arg-type]
    [token] = await writer.write(POD, ACCESS_VOLUME, tmp_path)
    assert (tmp_path / "token").read_text() == "token-1-p-uid-p"  # bound to the pod and its uid
    assert (tmp_path / "ca.crt").read_text() == "PEM"
    assert (tmp_path / "namespace").read_text() == "ns"
    assert (token.service_account, token.expiration_seconds) == ("sa", 3607)
    assert token.lifetime > 3600  # what the server granted, not what was asked


async def test_missing_sources_wait_and_bad_paths_fail(tmp_path: Path) -> None:
    writer = VolumeWriter(FakeApi({}), "n1")  # type: ignore[arg-type]
    with pytest.raises(PodConfigError, match=r'configmap "kube-root-ca\.crt" not found'):
        await writer.write(POD, ACCESS_VOLUME, tmp_path)
    optional = {"name": "v", "configMap": {"name": "absent", "optional": True}}
    assert await writer.write(POD, optional, tmp_path / "v") == []
    escape = {"name": "v", "downwardAPI": {"items": [
        {"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]}}  # fmt: skip
    with pytest.raises(PodSpecError, match="must not contain"):
        await writer.write(POD, escape, tmp_path / "v")


def test_token_refresh_timing() -> None:
    token = IssuedToken(Path("t"), "ns", "sa", "p", "u", "", 3600, issued_at=100.0, lifetime=1000)
    assert not token.due(100.0 + 799, None)
    assert token.due(100.0 + 800, None)  # 80% of its lifetime
    year = IssuedToken(Path("t"), "ns", "sa", "p", "u", "", 3607, issued_at=0.0, lifetime=3.2e7)
    assert year.due(24 * 3600.0, None)  # never older than a day
    assert [token.due(t, 2.0) for t in (101.0, 102.0)] == [False, True]  # the tests' override


async def test_failed_token_refresh_keeps_the_old_token_and_retries_later(tmp_path: Path) -> None:
    api = FakeApi({}, token_failures=0)
    writer = VolumeWriter(api, "n1", refresh_after=0.0)  # type: ignore[arg-type]
    volume = {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
    [token] = await writer.write(POD, volume, tmp_path)
    api.token_failures = 1
    await writer.refresh([token])
    assert (tmp_path / "token").read_text() == "token-1-p-uid-p"  # the old one stays
    assert token.retry_at > time.monotonic()
    await writer.refresh([token])
    assert api.issued == 1  # not before the retry delay
    token.retry_at = 0.0
    await writer.refresh([token])
    assert (tmp_path / "token").read_text() == "token-2-p-uid-p"


# ---- private mount namespaces --------------------------------------------------------------------


def test_only_paths_below_the_secrets_root_are_mounted() -> None:
    assert below_root("/var/run/secrets/kubernetes.io/serviceaccount")
    assert [below_root(p) for p in ("/var/run/secretsx", "/data")] == [False, False]
    wrapped = MountNamespaces("/usr/bin/unshare").wrap(
        ["prog", "arg"],
        [Mount("/var/run/secrets/a", Path("/h/a"), True), Mount("/data", Path("/h/d"))],
    )
    assert wrapped[:4] == ["/usr/bin/unshare", "-m", "--propagation", "private"]
    tail = ["/var/run/secrets", "/h/a", "/var/run/secrets/a", "ro", "--", "prog", "arg"]
    assert wrapped[-7:] == tail  # /data is not below the root: no mount, path rewriting only


def test_probe_falls_back_without_unshare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("extraction_operator.localcluster.mountns.shutil.which", lambda _: None)
    assert MountNamespaces.probe() is None


def test_wrapped_process_sees_only_its_own_read_only_mounts(tmp_path: Path) -> None:
    mounts = MountNamespaces.probe()
    if mounts is None:
        pytest.skip("this host cannot make private mount namespaces")
    (tmp_path / "f").write_text("mine")
    script = "ls -A /var/run/secrets; cat /var/run/secrets/app/f; ! touch /var/run/secrets/app/g"
    argv = mounts.wrap(["sh", "-c", script], [Mount("/var/run/secrets/app", tmp_path, True)])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app\nmine"  # the host's own /var/run/secrets content is hidden
    assert not (tmp_path / "g").exists()
    assert "app" not in {p.name for p in Path("/var/run/secrets").iterdir()}  # nothing leaked


# ---- the node's pod setup and the kubelet's last word ------------------------------------------


async def test_claims_must_be_bound_to_a_hostpath_volume(tmp_path: Path) -> None:
    claims = "/api/v1/namespaces/ns/persistentvolumeclaims"
    api = FakeApi({
        f"{claims}/pending": {"spec": {}, "status": {"phase": "Pending"}},
        f"{claims}/nfs": {"spec": {"volumeName": "pv-nfs"}, "status": {"phase": "Bound"}},
        f"{claims}/ok": {"spec": {"volumeName": "pv-ok"}, "status": {"phase": "Bound"}},
        "/api/v1/persistentvolumes/pv-nfs": {"spec": {"nfs": {"server": "x", "path": "/"}}},
        "/api/v1/persistentvolumes/pv-ok": {"spec": {"hostPath": {"path": str(tmp_path)}}},
    })  # fmt: skip
    setup = NodePodSetup(api, node_name="n1", ca_file=None, mounts=None)  # type: ignore[arg-type]
    assert await setup._claim_dir("ns", {"claimName": "ok"}) == tmp_path
    with pytest.raises(PodConfigError, match="not bound yet"):
        await setup._claim_dir("ns", {"claimName": "pending"})
    with pytest.raises(PodConfigError, match="not found"):
        await setup._claim_dir("ns", {"claimName": "absent"})
    with pytest.raises(PodSpecError, match="not a hostPath volume"):
        await setup._claim_dir("ns", {"claimName": "nfs"})


def test_inline_ca_data_becomes_a_file_for_pods(tmp_path: Path) -> None:
    config = ClientConfig("https://127.0.0.1:1", ca_data="PEM")
    path = _ca_file(config, tmp_path)
    assert path is not None
    assert path.read_text() == "PEM"
    assert _ca_file(ClientConfig("https://x", ca_file=Path("/ca.crt")), tmp_path) == Path("/ca.crt")


class DeleteRecorder:
    url = "http://127.0.0.1:1"

    def __init__(self, error: ApiError | None) -> None:
        self.error = error
        self.deletes: list[tuple[str, int | None, str | None]] = []

    async def delete(self, path: str, grace: int | None = None, *, uid: str | None = None) -> JSON:
        self.deletes.append((path, grace, uid))
        if self.error is not None:
            raise self.error
        return {}


@pytest.mark.parametrize("error", [None, ApiError(409, "Conflict", "uid precondition failed")])
async def test_deletion_is_confirmed_once_and_only_for_the_same_pod(
    tmp_path: Path, error: ApiError | None
) -> None:
    api = DeleteRecorder(error)
    cache = WatchCache(api, "/api/v1/pods", lambda *_: None)  # type: ignore[arg-type]
    kubelet = Kubelet(api, cache, tmp_path, node_name="n1", grace_seconds_cap=None,  # type: ignore[arg-type]
                      wake=lambda: None, bound_only=True)  # fmt: skip
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "deletionTimestamp": "T"},
           "spec": {"nodeName": "n1", "restartPolicy": "Never"}}  # fmt: skip
    await kubelet._sync_pod(pod)
    await kubelet._sync_pod(pod)  # a newer pod holding the name (409) is never retried
    assert api.deletes == [("/api/v1/namespaces/ns/pods/p", 0, "u1")]
