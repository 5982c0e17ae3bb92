"""`LocalCluster`: the API emulator and the job runner together, for tests and `make demo`.

Both run in one asyncio loop: `async with LocalCluster() as cluster:` in async code, or
`with LocalCluster.threaded() as cluster:` (a `ThreadedLocalCluster`) which runs that loop in a
daemon thread, so synchronous tests and an operator running in another thread (kopf, the
`kubernetes` client) can use it. Either way the cluster writes a kubeconfig pointing at the
emulator (`cluster.kubeconfig`) and exposes the parts tests poke at: `cluster.api` (the
`ApiServer`: `.faults`, `.request_log`), `cluster.runner` (the `JobRunner`: `kill`, `evict`,
`pause`, `resume`, `running_pods`, `logs`, all thread-safe). The runner's recorded output is
also served as `GET pods/<name>/log`, so `kubectl logs` works.

`apply()` creates objects through HTTP like `kubectl create`, and updates an object that already
exists with a merge patch of the manifest (a simplification of `kubectl apply`, enough for tests
and the demo). `apply_crds()` registers the ExtractionRun CRD generated in-process from the
models (the same document as `crds/extractionruns.yaml`) and waits until it is served.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from .jobrunner import JobRunner
from .kubeapi import JSON, ApiClient, ApiError
from .kubeconfig import write_kubeconfig
from .loopthread import LoopThread

T = TypeVar("T")
Manifest = JSON | list[JSON] | str | Path


def load_manifests(manifest: Manifest) -> list[JSON]:
    """Objects from a dict, a list of dicts, a `kind: List`, or a (multi-document) YAML file."""
    if isinstance(manifest, (str, Path)):
        text = Path(manifest).read_text()
        docs: list[Any] = [d for d in yaml.safe_load_all(text) if d is not None]
    elif isinstance(manifest, dict):
        docs = [manifest]
    else:
        docs = list(manifest)
    objects: list[JSON] = []
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ValueError(f"not a Kubernetes object (needs apiVersion and kind): {doc!r:.200}")
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(load_manifests(doc["items"]))
        else:
            objects.append(doc)
    return objects


class LocalCluster:
    """An in-process Kubernetes API emulator plus a process job runner, in one asyncio loop."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        grace_seconds_cap: float = 5.0,
        node_name: str = "localcluster-node",
    ) -> None:
        self._requested_workdir = workdir
        self._grace_seconds_cap = grace_seconds_cap
        self._node_name = node_name
        self._temp_dir: Path | None = None
        self._api: Any = None
        self._runner: JobRunner | None = None
        self._client: ApiClient | None = None
        self.workdir = Path(workdir) if workdir is not None else Path()
        self.kubeconfig = Path()

    @classmethod
    def threaded(
        cls,
        workdir: Path | None = None,
        *,
        grace_seconds_cap: float = 5.0,
        node_name: str = "localcluster-node",
    ) -> ThreadedLocalCluster:
        """A cluster whose loop runs in a daemon thread; use it as a `with` block."""
        return ThreadedLocalCluster(
            cls(workdir, grace_seconds_cap=grace_seconds_cap, node_name=node_name)
        )

    @property
    def api(self) -> Any:
        """The running `ApiServer` (fault injection: `.faults`; observed calls: `.request_log`)."""
        if self._api is None:
            raise RuntimeError("the local cluster is not started")
        return self._api

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise RuntimeError("the local cluster is not started")
        return self._runner

    @property
    def url(self) -> str:
        return str(self.api.url)

    async def start(self) -> None:
        from .apiserver import ApiServer  # the emulator package is owned by its own module

        if self._requested_workdir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="extraction-localcluster-"))
            self.workdir = self._temp_dir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._api = ApiServer(host="127.0.0.1", port=0)
        self._api.pod_logs = self._pod_logs
        await self._api.start()
        try:
            self.kubeconfig = write_kubeconfig(self.workdir / "kubeconfig", self.url)
            self._client = ApiClient(self.url)
            self._runner = JobRunner(
                self.url,
                self.workdir / "node",
                node_name=self._node_name,
                grace_seconds_cap=self._grace_seconds_cap,
            )
            await self._runner.start()
        except BaseException:
            await self.stop()
            raise

    def _pod_logs(self, namespace: str, pod: str, container: str) -> str | None:
        """`kubectl logs` through the emulator: the output the runner recorded (None: never ran)."""
        if self._runner is None:
            return None
        try:
            return self._runner.logs(namespace, pod)
        except (KeyError, RuntimeError):
            return None

    async def restart_runner(self) -> JobRunner:
        """Stop the job runner (its processes die) and start a fresh one on the same workdir,
        as a node whose kubelet restarts; returns the new runner."""
        await self.runner.stop()
        self._runner = JobRunner(
            self.url,
            self.workdir / "node",
            node_name=self._node_name,
            grace_seconds_cap=self._grace_seconds_cap,
        )
        await self._runner.start()
        return self._runner

    async def stop(self) -> None:
        """Kill every stage process, stop the API server, remove a temporary workdir."""
        if self._runner is not None:
            await self._runner.stop()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._api is not None:
            await self._api.stop()
            self._api = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    async def __aenter__(self) -> LocalCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def client(self) -> ApiClient:
        """A small async REST client bound to the emulator (the runner's own client type)."""
        if self._client is None:
            raise RuntimeError("the local cluster is not started")
        return self._client

    async def apply(self, manifest: Manifest) -> list[JSON]:
        """Create each object (or merge-patch it when it exists); returns the stored objects."""
        return [await self._apply_one(obj) for obj in load_manifests(manifest)]

    async def _apply_one(self, obj: JSON) -> JSON:
        client = self.client
        resource = await client.resource_for(str(obj["apiVersion"]), str(obj["kind"]))
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default") if resource.namespaced else None
        body = dict(obj)
        if namespace is not None:
            body["metadata"] = {**meta, "namespace": namespace}
        try:
            return await client.create(resource.path(namespace), body)
        except ApiError as exc:
            if not (exc.conflict and meta.get("name")):
                raise
        update = {k: v for k, v in body.items() if k != "status"}
        update["metadata"] = {
            k: v for k, v in (body.get("metadata") or {}).items() if k != "resourceVersion"
        }
        return await client.patch(resource.path(namespace, str(meta["name"])), update)

    async def apply_crds(self, *, wait_seconds: float = 10.0) -> list[JSON]:
        """Register the ExtractionRun CRD and wait until its resource is served."""
        from extraction_operator.api.crd import generate_crd

        crd = generate_crd()
        applied = await self.apply(crd)
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("served"))
        api_version = f"{spec['group']}/{version}"
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            try:
                await self.client.resource_for(api_version, spec["names"]["kind"])
                return applied
            except ApiError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)


class ThreadedLocalCluster:
    """A `LocalCluster` running in its own event loop on a daemon thread.

    Methods here are synchronous and safe to call from any thread; `call(coroutine)` runs any
    coroutine on the cluster's loop (e.g. `cluster.call(cluster.client.get(path))`).
    """

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self._loop = LoopThread("localcluster")
        self.loop = self._loop.loop
        self._started = False

    def start(self, timeout: float = 60.0) -> ThreadedLocalCluster:
        self._loop.start()
        try:
            self.call(self.cluster.start(), timeout=timeout)
        except BaseException:
            self._loop.stop()
            raise
        self._started = True
        return self

    def stop(self, timeout: float = 60.0) -> None:
        if self._started:
            self._started = False
            try:
                self.call(self.cluster.stop(), timeout=timeout)
            finally:
                self._loop.stop()

    def __enter__(self) -> ThreadedLocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run a coroutine on the cluster's loop and wait for its result."""
        return self._loop.call(coro, timeout)

    # The same surface as LocalCluster, synchronously.
    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def workdir(self) -> Path:
        return self.cluster.workdir

    @property
    def api(self) -> Any:
        return self.cluster.api

    @property
    def runner(self) -> JobRunner:
        return self.cluster.runner

    @property
    def client(self) -> ApiClient:
        return self.cluster.client

    def apply(self, manifest: Manifest) -> list[JSON]:
        return self.call(self.cluster.apply(manifest))

    def apply_crds(self) -> list[JSON]:
        return self.call(self.cluster.apply_crds())

    def restart_runner(self) -> JobRunner:
        return self.call(self.cluster.restart_runner())


__all__ = ["LocalCluster", "ThreadedLocalCluster", "load_manifests"]
