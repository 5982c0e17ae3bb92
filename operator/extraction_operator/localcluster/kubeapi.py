"""A minimal asyncio client of the Kubernetes REST API, for the job runner and `LocalCluster`.

The job runner is a client like any kubelet or controller: it must work against any server that
speaks the Kubernetes REST API (the local emulator or a real kube-apiserver), so it talks
HTTP/JSON through aiohttp and relies on nothing but documented API behaviour. The official
`kubernetes` client is synchronous, and `kubernetes_asyncio` is not a dependency; the handful of
verbs needed here (list, watch, get, create, patch, delete, discovery) fit in this module.

Authentication is what a real node needs and nothing more: none (the emulator), TLS with a CA and
a client certificate (a kubelet's `system:node:<name>` identity), or a bearer token, given inline
or as a file that is re-read whenever it changes (a rotated service account token). Build a
client for a kubeconfig with `ApiClient.from_kubeconfig`.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from .kubeconfig import ClientConfig, load_kubeconfig

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """An API request answered with an error status (or did not answer at all: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


def api_prefix(api_version: str) -> str:
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API: `/api/v1` or `/apis/<group>/<version>` plus plural."""

    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        """Core kinds (`v1`) live under `/api`, grouped ones (`batch/v1`) under `/apis`."""
        return api_prefix(self.api_version)

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """The collection path (all namespaces when `namespace` is None) or an object's path."""
        parts = [self.prefix]
        if self.namespaced and namespace is not None:
            parts.append(f"/namespaces/{quote(namespace, safe='')}")
        parts.append(f"/{self.plural}")
        if name is not None:
            parts.append(f"/{quote(name, safe='')}")
            if sub:
                parts.append(f"/{sub}")
        return "".join(parts)


PODS = Resource("v1", "pods")
JOBS = Resource("batch/v1", "jobs")
SECRETS = Resource("v1", "secrets")
CONFIGMAPS = Resource("v1", "configmaps")
SERVICEACCOUNTS = Resource("v1", "serviceaccounts")
PVCS = Resource("v1", "persistentvolumeclaims")
PVS = Resource("v1", "persistentvolumes", namespaced=False)
NODES = Resource("v1", "nodes", namespaced=False)
LEASES = Resource("coordination.k8s.io/v1", "leases")


def _error_from(status: int, body: str) -> ApiError:
    """Turn an error response into ApiError, using the `Status` body when there is one."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return ApiError(status, str(doc.get("reason", "")), str(doc.get("message", body[:200])))
    return ApiError(status, "", body[:200])


@contextlib.contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """Inline PEM as a private temporary file: `ssl` loads client certificates from files only."""
    fd, name = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield name
    finally:
        os.unlink(name)


def tls_context(config: ClientConfig) -> ssl.SSLContext | None:
    """The TLS settings of `config` (None for a plain-HTTP server)."""
    if not config.server.startswith("https://"):
        return None
    if config.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file else None, cadata=config.ca_data
        )
    if config.cert_file is not None and config.key_file is not None:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    elif config.cert_data is not None and config.key_data is not None:
        with _pem_file(config.cert_data) as cert, _pem_file(config.key_data) as key:
            context.load_cert_chain(cert, key)
    return context


class _TokenFile:
    """A bearer token read from a file, re-read whenever the file changes (token rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def read(self) -> str:
        try:
            stat = self.path.stat()
        except OSError:
            return self._token
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._token = self.path.read_text().strip()
            self._stamp = stamp
        return self._token


class ApiClient:
    """Async REST calls against one API server URL; every call has a bounded timeout.

    The timeout matters: the emulator's fault injection can make a request hang, and a hung
    request must never wedge the runner's reconcile loop.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        token: str | None = None,
        token_file: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._token = token
        self._token_file = _TokenFile(token_file) if token_file is not None else None
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[tuple[str, str], Resource] = {}

    @classmethod
    def from_config(cls, config: ClientConfig, *, timeout: float = 5.0) -> ApiClient:
        return cls(
            config.server,
            timeout=timeout,
            token=config.token,
            token_file=config.token_file,
            ssl_context=tls_context(config),
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, *, timeout: float = 5.0) -> ApiClient:
        """A client authenticating as the current context of the kubeconfig at `path`."""
        return cls.from_config(load_kubeconfig(path), timeout=timeout)

    def _auth(self) -> dict[str, str]:
        token = self._token_file.read() if self._token_file is not None else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        time_limit: float | None = None,
    ) -> JSON:
        """One request; returns the decoded JSON body or raises ApiError (status 0: no answer)."""
        data = None if body is None else json.dumps(body)
        headers = self._auth()
        if data is not None:
            headers["Content-Type"] = content_type
        limit = aiohttp.ClientTimeout(total=time_limit if time_limit is not None else self._timeout)
        try:
            async with self._open().request(
                method, self.url + path, data=data, params=params, headers=headers, timeout=limit
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error_from(resp.status, text)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(0, type(exc).__name__, str(exc) or "no answer") from exc
        try:
            doc = json.loads(text) if text else {}
        except ValueError as exc:
            raise ApiError(0, "BadBody", f"{method} {path}: not JSON: {text[:200]!r}") from exc
        if not isinstance(doc, dict):
            raise ApiError(0, "BadBody", f"{method} {path}: not a JSON object")
        return doc

    async def get(self, path: str) -> JSON:
        return await self.request("GET", path)

    async def list(self, path: str, **params: str) -> tuple[list[JSON], str]:
        """All items of a collection and the list's resourceVersion (to start a watch from)."""
        doc = await self.request("GET", path, params=params)
        items = doc.get("items") or []
        rv = (doc.get("metadata") or {}).get("resourceVersion") or ""
        return [i for i in items if isinstance(i, dict)], str(rv)

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(
        self, path: str, grace_period_seconds: int | None = None, *, uid: str | None = None
    ) -> JSON:
        """Delete in the background; with `uid`, only if the object is still that incarnation
        (a `409 Conflict` otherwise), so a pod recreated under the same name is never hit."""
        body: JSON = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        return await self.request("DELETE", path, body=body)

    async def watch(
        self,
        path: str,
        resource_version: str,
        *,
        timeout_seconds: int = 60,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[JSON]:
        """Watch events of a collection from `resource_version`, until the server ends the stream.

        Yields the raw event documents (`{"type": ..., "object": ...}`), BOOKMARKs and ERRORs
        included; the caller decides what an ERROR (typically 410 Gone) means.
        """
        query = {
            **(params or {}),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        limit = aiohttp.ClientTimeout(total=timeout_seconds + 15, sock_connect=self._timeout)
        try:
            async with self._open().get(
                self.url + path, params=query, timeout=limit, headers=self._auth()
            ) as resp:
                if resp.status >= 400:
                    raise _error_from(resp.status, await resp.text())
                async for raw in resp.content:
                    line = raw.strip()
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # a torn line from a dropped stream: the relist repairs it
                    if isinstance(event, dict):
                        yield event
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(0, type(exc).__name__, str(exc) or "watch stream failed") from exc

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        """Map apiVersion + kind to its REST resource through discovery (cached; a miss refreshes,
        so a CRD created a moment ago is found)."""
        key = (api_version, kind)
        if key not in self._discovery:
            doc = await self.get(api_prefix(api_version))
            for res in doc.get("resources") or []:
                if not isinstance(res, dict) or "/" in str(res.get("name", "")):
                    continue  # subresources such as pods/status
                found = Resource(api_version, str(res["name"]), bool(res.get("namespaced")))
                self._discovery[(api_version, str(res.get("kind", "")))] = found
        if key not in self._discovery:
            raise ApiError(
                404, "NotFound", f"the server does not serve kind {kind} in {api_version}"
            )
        return self._discovery[key]
