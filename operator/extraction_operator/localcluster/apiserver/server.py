"""The HTTP front of the emulator: URL routing, verbs, list/watch streaming, errors, faults.

One catch-all aiohttp route parses the Kubernetes URL layout itself
(`/api/v1/namespaces/<ns>/<plural>/<name>/<subresource>`, `/apis/<group>/<version>/...`), because
which segment is a namespace and which a resource depends on the registry, and CRDs change the
registry at run time. Every request is logged and passes the fault injector before it is served.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import discovery, errors, openapi, patches
from .errors import ApiError
from .faults import FaultInjector, RequestInfo, RequestLog
from .history import Stored
from .kubeconfig import write_kubeconfig
from .query import bool_param, check_list_options, int64_param
from .resources import ResourceRegistry, ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Store
from .tables import render_table, wants_table
from .watches import WatchOptions, WatchStream

JSON = dict[str, Any]

_JSON_TYPE = "application/json"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(value), status=status, content_type=_JSON_TYPE)


def _strict(query: Any) -> bool:
    """`fieldValidation=Strict` (kubectl's default): unknown fields are an error, not pruned."""
    return bool(query.get("fieldValidation") == "Strict")


def _error_response(error: ApiError) -> web.Response:
    response = _json_response(error.status(), error.code)
    response.headers.update(error.headers)
    return response


PodLogSource = Callable[[str, str, str], str | None]
"""(namespace, pod, container) -> the container's output so far, or None when it has none."""


class _Route:
    """A parsed resource URL."""

    def __init__(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.subresource = subresource


class ApiServer:
    """A Kubernetes API server emulator on 127.0.0.1, plain HTTP, no authentication.

    `await start()`, then point clients at `url` (or `write_kubeconfig(path)`); `faults` injects
    failures, `request_log` records every request, `store` is the in-process object store, and
    `pod_logs` (set by whoever runs the pods) serves `GET pods/<name>/log` (`kubectl logs`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        history_size: int = 20000,
        bookmark_interval: float = 5.0,
        max_watch_seconds: float = 1800.0,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = ResourceRegistry()
        self.store = Store(self.registry, history_size=history_size)
        self.faults = FaultInjector()
        self.request_log = RequestLog()
        self.bookmark_interval = bookmark_interval
        self.max_watch_seconds = max_watch_seconds
        self.pod_logs: PodLogSource | None = None
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the API server is not started; await start() first")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self.faults.bind(asyncio.get_running_loop(), self.store.drop_watches)

    async def stop(self) -> None:
        self.store.drop_watches()
        self.faults.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig (cluster, user, context, namespace default) pointing at `url`."""
        return write_kubeconfig(path, self.url)

    # ----------------------------------------------------------------- routing

    def _parse(self, request: web.Request) -> tuple[RequestInfo, _Route | None, str | None]:
        """(request info, resource route or None, discovery/meta kind or None)."""
        path = request.path
        parts = [p for p in path.split("/") if p]
        method = request.method
        watch = bool_param(request.query, "watch")
        meta_paths = {
            (): "root",
            ("version",): "version",
            ("api",): "api",
            ("apis",): "apis",
            ("healthz",): "health",
            ("readyz",): "health",
            ("livez",): "health",
        }
        if tuple(parts) in meta_paths:
            return RequestInfo("get", path), None, meta_paths[tuple(parts)]
        if parts[0] == "openapi":
            return RequestInfo("get", path), None, "openapi"
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[0] == "apis" and len(parts) == 2:
            return RequestInfo("get", path, group=parts[1]), None, "group"
        else:
            return RequestInfo("get", path), None, "unknown"
        if not rest:
            return RequestInfo("get", path, group=group), None, "resources"
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        resource = self.registry.lookup(group, version, rest[0])
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) >= 3 else None
        if method == "GET":
            verb = "get" if name else ("watch" if watch else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            verb = method.lower()
        info = RequestInfo(verb, path, group, rest[0], namespace, name, subresource)
        if resource is None or len(rest) > 3:
            return info, None, "unknown"
        return info, _Route(resource, namespace, name, subresource), None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        info, route, meta = self._parse(request)
        record = self.request_log.start(
            info, request.method, request.query_string, request.headers.get("User-Agent", "")
        )
        status = 500
        try:
            response = await self._with_faults(request, info, route, meta)
            status = response.status
            return response
        except ApiError as error:
            status = error.code
            return _error_response(error)
        except asyncio.CancelledError:
            status = 499
            raise
        finally:
            self.request_log.finish(record, status)

    async def _with_faults(
        self, request: web.Request, info: RequestInfo, route: _Route | None, meta: str | None
    ) -> web.StreamResponse:
        for rule in self.faults.take(info):
            if rule.action == "delay" and rule.seconds:
                await asyncio.sleep(rule.seconds)
            elif rule.action == "hang":
                await self.faults.wait_released(rule.seconds)
            elif rule.action == "fail":
                reason = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "Timeout"}
                headers = {}
                if rule.retry_after is not None:
                    headers["Retry-After"] = str(max(1, round(rule.retry_after)))
                detail = {"retryAfterSeconds": int(rule.retry_after)} if rule.retry_after else None
                raise ApiError(
                    rule.status,
                    reason.get(rule.status, "InternalError"),
                    rule.message,
                    detail,
                    headers,
                )
        if route is None:
            return self._serve_meta(info, meta or "unknown")
        return await self._serve_resource(request, info, route)

    def _serve_meta(self, info: RequestInfo, kind: str) -> web.Response:
        if kind == "root":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for group, versions in self.registry.group_versions().items():
                if group:
                    paths += [f"/apis/{group}", *(f"/apis/{group}/{v}" for v in versions)]
            return _json_response({"paths": sorted(set(paths))})
        if kind == "version":
            return _json_response(discovery.VERSION_INFO)
        if kind == "health":
            return web.Response(text="ok")
        if kind == "api":
            return _json_response(discovery.core_versions())
        if kind == "openapi":
            return self._serve_openapi(info.path)
        if kind == "apis":
            return _json_response(discovery.group_list(self.registry))
        if kind == "group" and info.group is not None:
            found = discovery.group(self.registry, info.group)
            if found is not None:
                return _json_response(found)
        if kind == "resources" and info.group is not None:
            version = info.path.rstrip("/").rsplit("/", 1)[-1]
            listing = discovery.resource_list(self.registry, info.group, version)
            if listing is not None:
                return _json_response(listing)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _serve_openapi(self, path: str) -> web.Response:
        parts = [p for p in path.split("/") if p]
        if parts == ["openapi", "v3"]:
            return _json_response(openapi.root(self.registry))
        wanted: tuple[str, str] | None = None
        if parts[:3] == ["openapi", "v3", "api"] and len(parts) == 4:
            wanted = ("", parts[3])
        elif parts[:3] == ["openapi", "v3", "apis"] and len(parts) == 5:
            wanted = (parts[3], parts[4])
        if wanted is not None and self.registry.by_group_version(*wanted):
            return _json_response(openapi.group_version(self.registry, *wanted))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ----------------------------------------------------------------- resources

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        content_type = request.content_type
        if "protobuf" in content_type or "cbor" in content_type:
            raise errors.unsupported_media_type(content_type)
        try:
            if content_type == patches.APPLY or content_type.endswith("yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as error:
            raise errors.bad_request(
                f"the request body is not valid JSON or YAML: {error}"
            ) from None

    async def _object_body(self, request: web.Request, resource: ResourceType) -> Any:
        """A create or update body, typed the way the API server's decoder types it.

        JSON that is not an object has no apiVersion or kind to read; a custom resource is
        decoded as unstructured, so nothing defaults a missing `kind` or `apiVersion` (a built-in
        gets both from the URL).
        """
        body = await self._body(request)
        raw = await request.read()
        if not raw:
            cause = "couldn't get version/kind; json parse error: unexpected end of JSON input"
            raise errors.unrecognized(resource.kind, raw, cause)
        names = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}
        if type(body) in names and not request.content_type.endswith("yaml"):
            raise errors.not_an_object(resource.kind, raw, names[type(body)])
        if resource.custom and isinstance(body, dict):
            if not body.get("kind"):
                raise errors.missing_kind(resource.kind, raw)
            if not body.get("apiVersion"):
                raise errors.bad_request(
                    "the API version in the data () does not match the expected API version "
                    f"({resource.api_version})"
                )
        return body

    async def _serve_resource(
        self, request: web.Request, info: RequestInfo, route: _Route
    ) -> web.StreamResponse:
        resource, verb = route.resource, info.verb
        if route.subresource == "log" and resource.key == ("", "pods") and verb == "get":
            return self._pod_log(route, request.query)
        if route.subresource not in (None, "status"):
            raise errors.not_found(resource.group, f"{resource.plural}/{route.subresource}", "")
        if route.subresource == "status" and not resource.has_status:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        single_object = ("create", "get", "update", "patch", "delete")
        if resource.namespaced and route.namespace is None and verb in single_object:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not resource.namespaced and route.namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        query = request.query
        accept = request.headers.get("Accept", "")
        if query.get("dryRun"):
            raise errors.bad_request(
                "dryRun is not supported by the local API emulator; run without --dry-run=server"
            )
        if verb == "get":
            assert route.name is not None
            stored = self.store.get(resource, route.namespace, route.name)
            return self._object_response(resource, stored, accept, query)
        if verb == "list":
            return self._list(resource, route.namespace, query, accept)
        if verb == "watch":
            return await self._watch(request, resource, route.namespace, query, accept)
        if verb == "create":
            if route.name is not None:
                raise errors.method_not_allowed(f"POST is not supported on {info.path}")
            stored = self.store.create(
                resource,
                route.namespace,
                await self._object_body(request, resource),
                strict=_strict(query),
            )
            return self._object_response(resource, stored, accept, query, status=201)
        if verb == "update":
            assert route.name is not None
            stored = self.store.update(
                resource,
                route.namespace,
                route.name,
                await self._object_body(request, resource),
                route.subresource,
                strict=_strict(query),
            )
            return self._object_response(resource, stored, accept, query)
        if verb == "patch":
            assert route.name is not None
            return await self._patch(request, resource, route, accept)
        if verb == "delete":
            assert route.name is not None
            options = self._delete_options(query, await self._body(request))
            stored = self.store.delete(resource, route.namespace, route.name, **options)
            # 200 even while finalizers or a grace period hold the object, as a real server does.
            if resource.returns_deleted_object or self._still_there(resource, stored):
                return self._object_response(resource, stored, accept, query)
            return _json_response(errors.deleted(resource.group, resource.plural, stored.obj))
        if verb == "deletecollection":
            return self._delete_collection(
                request, resource, route.namespace, query, await self._body(request)
            )
        raise errors.method_not_allowed(f"{request.method} is not supported on {info.path}")

    def _still_there(self, resource: ResourceType, deleted: Stored) -> bool:
        """Whether a delete left the object in place (finalizers, a grace period): the same uid
        is stored still, not a successor of the same name (a republished root CA ConfigMap)."""
        meta = deleted.obj["metadata"]
        try:
            current = self.store.get(resource, meta.get("namespace"), meta["name"])
        except ApiError:
            return False
        return bool(current.obj["metadata"].get("uid") == meta.get("uid"))

    def _pod_log(self, route: _Route, query: Any) -> web.Response:
        """`kubectl logs`: text from the log source the job runner attaches (`pod_logs`)."""
        assert route.name is not None
        pod = self.store.get(route.resource, route.namespace, route.name).obj
        containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        container = str(query.get("container") or (containers[0] if containers else ""))
        if container not in containers:
            raise errors.bad_request(
                f'container "{container}" is not valid for pod "{route.name}": '
                f"choose one of {containers}"
            )
        source = self.pod_logs
        text = source(route.namespace or "", route.name, container) if source else None
        if text is None:
            raise errors.bad_request(
                f'container "{container}" in pod "{route.name}" is waiting to start: '
                "no output recorded for it"
            )
        tail = query.get("tailLines")
        if tail and tail.isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) else ""
        return web.Response(text=text, content_type="text/plain")

    async def _patch(
        self, request: web.Request, resource: ResourceType, route: _Route, accept: str
    ) -> web.Response:
        assert route.name is not None
        content_type = request.content_type
        body = await self._body(request)
        if content_type == patches.APPLY:
            try:
                self.store.get(resource, route.namespace, route.name)
            except ApiError as error:
                if error.code != 404:
                    raise
                if not isinstance(body, dict):
                    raise errors.bad_request("an apply patch must be an object") from None
                body.setdefault("metadata", {})["name"] = route.name
                stored = self.store.create(
                    resource, route.namespace, body, strict=_strict(request.query)
                )
                return self._object_response(resource, stored, accept, request.query, status=201)
        stored = self.store.patch(
            resource,
            route.namespace,
            route.name,
            content_type,
            body,
            route.subresource,
            strict=_strict(request.query),
        )
        return self._object_response(resource, stored, accept, request.query)

    @staticmethod
    def _delete_options(query: Any, body: Any) -> JSON:
        """DeleteOptions from the body when there is one, else from the query, never both.

        So it is on a real server: with a body (even `{}`), `?propagationPolicy=` and
        `?gracePeriodSeconds=` are not read at all.
        """
        options: JSON = {}
        if body is not None:
            source: Any = body if isinstance(body, dict) else {}
            grace = source.get("gracePeriodSeconds")
            orphan = source.get("orphanDependents") is True
        else:
            source = query
            grace = int64_param(query, "gracePeriodSeconds")
            orphan = "orphanDependents" in query and bool_param(query, "orphanDependents")
        propagation = source.get("propagationPolicy")
        if propagation is None and orphan:
            propagation = "Orphan"
        options["propagation"] = propagation
        if grace is not None:
            try:
                options["grace_period"] = int(grace)
            except (TypeError, ValueError):
                raise errors.bad_request(
                    f"gracePeriodSeconds must be an integer, not {grace!r}"
                ) from None
        preconditions = source.get("preconditions")
        if isinstance(preconditions, dict):
            options["preconditions"] = preconditions
        return options

    def _object_response(
        self,
        resource: ResourceType,
        stored: Stored,
        accept: str,
        query: Any,
        status: int = 200,
    ) -> web.Response:
        if wants_table(accept):
            table = render_table(
                resource,
                [stored.obj],
                stored.obj["metadata"].get("resourceVersion", ""),
                query.get("includeObject", "Metadata"),
            )
            return _json_response(table, status)
        return web.Response(body=stored.raw, status=status, content_type=_JSON_TYPE)

    def _selectors(self, resource: ResourceType, query: Any) -> tuple[LabelSelector, FieldSelector]:
        labels = LabelSelector.parse(query.get("labelSelector"))
        fields = FieldSelector.parse(
            query.get("fieldSelector"),
            resource.field_selectors,
            resource.any_field_selector,
            resource.plural,
        )
        return labels, fields

    def _list(
        self, resource: ResourceType, namespace: str | None, query: Any, accept: str
    ) -> web.Response:
        check_list_options(query)
        labels, fields = self._selectors(resource, query)
        items, rv = self.store.list(resource, namespace, labels, fields)
        list_rv = rv
        token = query.get("continue")
        if token:
            start, list_rv = self._decode_continue(token)
            items = [
                s
                for s in items
                if (s.obj["metadata"].get("namespace", ""), s.obj["metadata"]["name"]) > start
            ]
        meta: JSON = {"resourceVersion": str(list_rv)}
        count = int64_param(query, "limit")
        if count is not None and 0 < count < len(items):
            last = items[count - 1].obj["metadata"]
            meta["continue"] = self._encode_continue(
                (last.get("namespace", ""), last["name"]), list_rv
            )
            meta["remainingItemCount"] = len(items) - count
            items = items[:count]
        if wants_table(accept):
            table = render_table(
                resource,
                [s.obj for s in items],
                str(list_rv),
                query.get("includeObject", "Metadata"),
            )
            table["metadata"].update(meta)
            return _json_response(table)
        head = _dumps(
            {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": meta}
        )
        encoded = (s.raw if resource.custom else s.item_raw for s in items)
        body = head[:-1] + b',"items":[' + b",".join(encoded) + b"]}"
        return web.Response(body=body, content_type=_JSON_TYPE)

    @staticmethod
    def _encode_continue(start: tuple[str, str], rv: int) -> str:
        return base64.urlsafe_b64encode(_dumps({"rv": rv, "start": list(start)})).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[tuple[str, str], int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return (str(data["start"][0]), str(data["start"][1])), int(data["rv"])
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
            raise errors.bad_request(
                "continue: the continue token is malformed; restart the list without it"
            ) from None

    def _delete_collection(
        self, request: web.Request, resource: ResourceType, namespace: str | None, query: Any,
        body: Any,
    ) -> web.Response:  # fmt: skip
        check_list_options(query)
        labels, fields = self._selectors(resource, query)
        items, _ = self.store.list(resource, namespace, labels, fields)
        options = self._delete_options(query, body)
        deleted = []
        for stored in items:
            meta = stored.obj["metadata"]
            with contextlib.suppress(ApiError):
                deleted.append(
                    self.store.delete(resource, meta.get("namespace"), meta["name"], **options).obj
                )
        return _json_response(
            {
                "kind": resource.list_kind,
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )

    # ----------------------------------------------------------------- watch

    async def _watch(
        self,
        request: web.Request,
        resource: ResourceType,
        namespace: str | None,
        query: Any,
        accept: str,
    ) -> web.StreamResponse:
        check_list_options(query)
        labels, fields = self._selectors(resource, query)
        since_text = query.get("resourceVersion", "")
        try:
            since = int(since_text) if since_text else None
        except ValueError:
            raise errors.bad_request(
                f'resourceVersion: Invalid value: "{since_text}": must be an integer'
            ) from None
        # Whole seconds only (a 400 otherwise, above); 0 means the server's own limit.
        timeout = int64_param(query, "timeoutSeconds") or self.max_watch_seconds
        options = WatchOptions(
            since=since,
            labels=labels,
            fields=fields,
            bookmarks=bool_param(query, "allowWatchBookmarks"),
            timeout=timeout,
            table=wants_table(accept),
            include_object=query.get("includeObject", "Metadata"),
            bookmark_interval=self.bookmark_interval,
        )
        return await WatchStream(self.store, resource, namespace, options).serve(request)
