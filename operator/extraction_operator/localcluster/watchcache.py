"""A list+watch cache of one resource across all namespaces (a tiny client-go informer).

Level-triggered controllers need the current set of objects, not a stream of events: this cache
lists, then watches from the list's resourceVersion, resumes after a dropped stream from the last
seen resourceVersion, and relists after `410 Gone` or any error. A relist *merges*: an object the
cache learnt from a write of our own after the list was taken (newer resourceVersion) is kept, so
a controller that created a Pod a moment ago never sees it vanish and creates a duplicate.

`params` narrow both the list and the watch (a node's `fieldSelector=spec.nodeName=<node>`: the
Node authorizer lets a kubelet list and watch only the pods bound to it, and only when it asks for
exactly those).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from .kubeapi import JSON, ApiClient, ApiError

log = logging.getLogger(__name__)

Key = tuple[str, str]
ChangeCallback = Callable[[str, JSON | None, JSON | None], None]


def key_of(obj: JSON) -> Key | None:
    """(namespace, name) of an object, or None when it is too malformed to track."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None
    return str(meta.get("namespace") or ""), meta["name"]


def rv_of(obj: JSON | None) -> int:
    """The resourceVersion as an integer for ordering; -1 when absent or not numeric.

    resourceVersions are opaque by contract, but both etcd-backed servers and the emulator use
    increasing integers; when they are not numbers the cache simply never prefers its own copy.
    """
    meta = (obj or {}).get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else -1


class WatchCache:
    """Keeps `objects` in step with the server; calls `on_change(type, old, new)` on changes."""

    def __init__(
        self,
        client: ApiClient,
        path: str,
        on_change: ChangeCallback,
        *,
        watch_timeout: int = 30,
        retry_delay: float = 0.5,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.params = dict(params or {})
        self.objects: dict[Key, JSON] = {}
        self.synced = asyncio.Event()
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._retry_delay = retry_delay

    def remember(self, obj: JSON) -> None:
        """Store an object returned by our own write, unless the cache already has a newer one."""
        key = key_of(obj)
        if key is None:
            return
        old = self.objects.get(key)
        if old is None or rv_of(obj) >= rv_of(old):
            self.objects[key] = obj
            self._on_change("MODIFIED" if old else "ADDED", old, obj)

    def forget(self, obj: JSON) -> None:
        """Drop an object we deleted ourselves (the watch will confirm it)."""
        key = key_of(obj)
        if key is not None and key in self.objects:
            self._on_change("DELETED", self.objects.pop(key), None)

    async def run(self) -> None:
        """List and watch forever (cancel to stop); never raises on server errors."""
        while True:
            try:
                rv = await self._relist()
                while True:
                    rv = await self._watch_from(rv)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                log.debug("watch of %s restarts after: %s", self.path, exc)
            except Exception:
                log.exception("watch of %s failed; relisting", self.path)
            await asyncio.sleep(self._retry_delay)

    async def _relist(self) -> str:
        items, rv = await self.client.list(self.path, **self.params)
        list_rv = int(rv) if rv.isdigit() else None
        fresh: dict[Key, JSON] = {}
        for obj in items:
            key = key_of(obj)
            if key is not None:
                fresh[key] = obj
        for key, old in list(self.objects.items()):
            if key in fresh:
                continue
            if list_rv is not None and rv_of(old) > list_rv:
                fresh[key] = old  # created by us after the list was taken
            else:
                self._on_change("DELETED", self.objects.pop(key), None)
        for key, obj in fresh.items():
            previous = self.objects.get(key)
            if previous is not None and list_rv is not None and rv_of(previous) > list_rv:
                continue
            self.objects[key] = obj
            if previous != obj:
                self._on_change("MODIFIED" if previous else "ADDED", previous, obj)
        self.synced.set()
        return rv

    async def _watch_from(self, rv: str) -> str:
        """Follow one watch stream; returns the resourceVersion to resume from."""
        events = self.client.watch(
            self.path, rv, timeout_seconds=self._watch_timeout, params=self.params
        )
        async for event in events:
            kind = event.get("type")
            obj = event.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 0), str(obj.get("reason", "")), "watch error")
            new_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if new_rv:
                rv = str(new_rv)
            if kind == "BOOKMARK":
                continue
            key = key_of(obj)
            if key is None:
                log.warning("skipping a malformed %s event on %s", kind, self.path)
                continue
            old = self.objects.get(key)
            if kind == "DELETED":
                if old is not None:
                    del self.objects[key]
                    self._on_change("DELETED", old, None)
            elif old is None or rv_of(obj) >= rv_of(old) or rv_of(obj) < 0:
                self.objects[key] = obj
                self._on_change(str(kind), old, obj)
        return rv
