"""Fixtures for the API emulator's conformance tests.

`cluster` is parametrized over two backends, so every test that uses it runs twice, as
`test_x[emulator]` and `test_x[real]`: once against an in-process `ApiServerThread`, and once
against a real API server, which is what keeps the emulator honest. The real cluster is the
session's `real_cluster` (tests/conftest.py, its `admin_kubeconfig`); where no such fixture is
defined, the cluster of the kubeconfig named by `EXTRACTION_TEST_KUBECONFIG`, and without either
the `[real]` tests skip, saying so. Tests of emulator-only features (fault injection, the request
log, history compaction) skip themselves on the real backend.

The suite's custom resource is a `Gizmo` (conformance_crd.yaml) in a group of its own, created and
deleted by the `crd` fixture, so the suite can share a cluster with a running operator.
`emulator_cluster` is an emulator alone, for tests of the emulator serving the project's own CRD.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from extraction_operator.localcluster.apiserver import ApiServerThread

CRD_FILE = Path(__file__).with_name("conformance_crd.yaml")
GROUP, VERSION, PLURAL, KIND = "conformance.extraction.dev", "v1", "gizmos", "Gizmo"
BACKENDS = ("emulator", "real")
NO_REAL_CLUSTER = (
    "no real cluster for the [real] backend: define the session fixture `real_cluster` in "
    "tests/conftest.py, or set EXTRACTION_TEST_KUBECONFIG to a cluster-admin kubeconfig"
)


class Cluster:
    """Where the tests talk to: a kubeconfig, an API client, and the emulator when it is one."""

    def __init__(self, kubeconfig: Path, emulator: ApiServerThread | None) -> None:
        self.kubeconfig = kubeconfig
        self.emulator = emulator
        self.api = config.new_client_from_config(str(kubeconfig))
        self.api.user_agent = "extraction-conformance-tests"
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.apiext = client.ApiextensionsV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.events = client.EventsV1Api(self.api)

    @property
    def server(self) -> ApiServerThread:
        """The emulator; skips the test when running against a real cluster."""
        if self.emulator is None:
            pytest.skip("emulator-only behaviour (fault injection / request log / compaction)")
        return self.emulator

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """A raw API call: (HTTP status, parsed JSON body or text, response headers)."""
        header_params = {"Content-Type": content_type, "Accept": "application/json"}
        header_params.update(headers or {})
        response = self._call(method, path, query or [], header_params, body, timeout=30)
        raw = response.read()
        text = raw.decode() if isinstance(raw, bytes) else (raw or "")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.status, parsed, dict(response.headers)

    def _call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: Any,
        timeout: float,
    ) -> Any:
        verb, url, all_headers, payload, _ = self.api.param_serialize(
            method,
            path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.api.call_api(
            verb, url, header_params=all_headers, body=payload, _request_timeout=timeout
        )

    def watch(
        self,
        path: str,
        query: list[tuple[str, str]],
        *,
        stop_after: int | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Open a raw watch stream and collect its events until it ends, or `stop_after` events."""
        response = self._call(
            "GET", path, [("watch", "true"), *query], {"Accept": "application/json"}, None, timeout
        ).response
        events: list[dict[str, Any]] = []
        buffer = b""
        try:
            for chunk in response.stream(1024, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        events.append(json.loads(line))
                        if stop_after is not None and len(events) >= stop_after:
                            return events
        finally:
            response.release_conn()
        return events


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns a truthy value (a real cluster acts asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)


def _real_kubeconfig(request: pytest.FixtureRequest) -> Path:
    """The admin kubeconfig of the session's real cluster; skips the test when there is none."""
    try:
        real = request.getfixturevalue("real_cluster")
    except pytest.FixtureLookupError:
        external = os.environ.get("EXTRACTION_TEST_KUBECONFIG")
        if not external:
            pytest.skip(NO_REAL_CLUSTER)
        return Path(external)
    return Path(real.admin_kubeconfig)


@contextlib.contextmanager
def _emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with ApiServerThread(bookmark_interval=1.0) as server:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
        yield Cluster(kubeconfig, server)


@pytest.fixture(scope="session", params=BACKENDS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if request.param == "real":
        yield Cluster(_real_kubeconfig(request), None)
        return
    with _emulator(tmp_path_factory) as emulated:
        yield emulated


@pytest.fixture(scope="session")
def emulator_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An emulator only, whatever backends `cluster` runs on."""
    with _emulator(tmp_path_factory) as emulated:
        yield emulated


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    # Only tests that use a cluster can have left faults; asking others for one would parametrize
    # them over the backends.
    for name in ("cluster", "emulator_cluster"):
        if name in request.fixturenames:
            used: Cluster = request.getfixturevalue(name)
            if used.emulator is not None:
                used.emulator.faults.clear()


def make_namespace(cluster: Cluster) -> Iterator[str]:
    name = unique("xtest")
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        cluster.core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    yield from make_namespace(cluster)


def apply_crd(cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create a CRD (or find it there already) and wait until it is Established."""
    try:
        cluster.apiext.create_custom_resource_definition(manifest)
    except ApiException as error:
        if error.status != 409:
            raise

    def established() -> dict[str, Any] | None:
        crd = cluster.api.sanitize_for_serialization(
            cluster.apiext.read_custom_resource_definition(manifest["metadata"]["name"])
        )
        conditions = (crd.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return crd if ok else None

    result: dict[str, Any] = eventually(established)
    return result


def delete_crd(cluster: Cluster, name: str) -> None:
    """Delete a CRD and wait until it is gone (a real server first deletes its objects)."""
    try:
        cluster.apiext.delete_custom_resource_definition(name)
    except ApiException as error:
        if error.status != 404:
            raise

    def gone() -> bool:
        try:
            cluster.apiext.read_custom_resource_definition(name)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    eventually(gone, timeout=60)


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The suite's Gizmo CRD (conformance_crd.yaml), Established for the session, then deleted."""
    manifest = yaml.safe_load(CRD_FILE.read_text())
    yield apply_crd(cluster, manifest)
    delete_crd(cluster, manifest["metadata"]["name"])


def gizmo_body(name: str, **spec: Any) -> dict[str, Any]:
    """A minimal valid Gizmo."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"image": "busybox", "stages": [{"name": "a", "command": ["true"]}], **spec},
    }


@pytest.fixture(name="gizmo_body")
def _gizmo_body() -> Callable[..., dict[str, Any]]:
    return gizmo_body


@pytest.fixture(name="unique")
def _unique() -> Callable[[str], str]:
    return unique


@pytest.fixture(name="eventually")
def _eventually() -> Callable[..., Any]:
    return eventually


@pytest.fixture(name="apply_crd", scope="session")
def _apply_crd() -> Callable[[Cluster, dict[str, Any]], dict[str, Any]]:
    return apply_crd


@pytest.fixture(name="make_namespace", scope="session")
def _make_namespace() -> Callable[[Cluster], Iterator[str]]:
    return make_namespace
