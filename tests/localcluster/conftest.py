"""Fixtures for the API emulator's conformance tests.

By default the tests run against an in-process `ApiServerThread`. With `EXTRACTION_TEST_KUBECONFIG`
pointing at a kubeconfig they run against that cluster instead, so the emulator's fidelity can be
checked against a real API server; tests of emulator-only features (fault injection, the request
log, history compaction) skip themselves there with a reason.
"""

from __future__ import annotations

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

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "extractionruns.yaml"
GROUP, VERSION, PLURAL = "extraction.dev", "v1alpha1", "extractionruns"


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


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("EXTRACTION_TEST_KUBECONFIG")
    if external:
        yield Cluster(Path(external), None)
        return
    with ApiServerThread(bookmark_interval=1.0) as server:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
        yield Cluster(kubeconfig, server)


@pytest.fixture(autouse=True)
def _clean_faults(cluster: Cluster) -> Iterator[None]:
    yield
    if cluster.emulator is not None:
        cluster.emulator.faults.clear()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = unique("xtest")
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        cluster.core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> dict[str, Any]:
    """The ExtractionRun CRD from crds/extractionruns.yaml, applied and Established."""
    manifest = yaml.safe_load(CRD_FILE.read_text())
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


def run_body(name: str, **spec: Any) -> dict[str, Any]:
    """A minimal valid ExtractionRun."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ExtractionRun",
        "metadata": {"name": name},
        "spec": {"image": "busybox", "stages": [{"name": "a", "command": ["true"]}], **spec},
    }


@pytest.fixture(name="run_body")
def _run_body() -> Callable[..., dict[str, Any]]:
    return run_body


@pytest.fixture(name="unique")
def _unique() -> Callable[[str], str]:
    return unique


@pytest.fixture(name="eventually")
def _eventually() -> Callable[..., Any]:
    return eventually
