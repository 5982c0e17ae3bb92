"""One watch stream: newline-delimited JSON events, selectors, bookmarks, timeout, Table rows.

The stream first sends what the store hands it (a replay from the requested resourceVersion, or
synthetic ADDED events for the current objects), then live events. Selectors are applied to the
state before and after each change, as a real server does, so an object relabelled out of a
selector is seen as DELETED by that watch and one relabelled into it as ADDED. Bookmarks (when
asked) carry the newest resourceVersion this stream has accounted for: periodically while idle
and right before the server-side timeout closes the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

from aiohttp import web

from extraction_operator.localcluster.aio import within

from .errors import ApiError
from .history import Event, Stored
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Store
from .tables import render_table


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclasses.dataclass
class WatchOptions:
    """What the client asked for in the watch request's query."""

    since: int | None
    labels: LabelSelector
    fields: FieldSelector
    bookmarks: bool
    timeout: float
    table: bool
    include_object: str
    bookmark_interval: float


class WatchStream:
    """Serve one watch request until its timeout, a drop, or the client going away."""

    def __init__(self, store: Store, resource: ResourceType, namespace: str | None,
                 options: WatchOptions) -> None:  # fmt: skip
        self.store = store
        self.resource = resource
        self.namespace = namespace
        self.options = options
        self._columns_sent = False
        self._seen_rv = 0

    async def serve(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            initial, watcher, start_rv = self.store.watch(
                self.resource, self.namespace, self.options.since
            )
        except ApiError as error:  # 410 Gone arrives as an ERROR event, as from a real server
            await response.prepare(request)
            await response.write(_dumps({"type": "ERROR", "object": error.status()}) + b"\n")
            await response.write_eof()
            return response
        self._seen_rv = max(start_rv, self.options.since or 0)
        try:
            await response.prepare(request)
            for event in initial:
                await self._send(response, event)
            await self._follow(response, watcher.queue)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.store.unwatch(watcher)
        return response

    async def _follow(
        self, response: web.StreamResponse, queue: asyncio.Queue[Event | None]
    ) -> None:
        options = self.options
        deadline = time.monotonic() + options.timeout
        next_bookmark = time.monotonic() + options.bookmark_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                if options.bookmarks:
                    await self._bookmark(response)
                return
            wake = min(deadline, next_bookmark) if options.bookmarks else deadline
            try:
                item = await within(queue.get(), max(0.0, wake - now))
            except TimeoutError:
                if options.bookmarks and time.monotonic() >= next_bookmark:
                    await self._bookmark(response)
                    next_bookmark = time.monotonic() + options.bookmark_interval
                continue
            if item is None:
                return  # dropped by the fault injector or by shutdown
            await self._send(response, item)

    async def _bookmark(self, response: web.StreamResponse) -> None:
        bookmark = {
            "type": "BOOKMARK",
            "object": {
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version,
                "metadata": {"resourceVersion": str(self._seen_rv)},
            },
        }
        await response.write(_dumps(bookmark) + b"\n")

    def _matches(self, stored: Stored | None) -> bool:
        if stored is None:
            return False
        shown = self.store.present(stored, self.resource)
        return self.options.labels.matches(shown.obj) and self.options.fields.matches(shown.obj)

    def _type_for(self, event: Event) -> str | None:
        """The event type this watch sees, or None when the change is outside its selectors."""
        now = self._matches(event.current)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = self._matches(event.previous)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        return "DELETED" if before else None

    async def _send(self, response: web.StreamResponse, event: Event) -> None:
        self._seen_rv = max(self._seen_rv, event.rv)
        kind = self._type_for(event)
        if kind is None:
            return
        stored = self.store.present(event.current, self.resource)
        if self.options.table:
            rendered = render_table(
                self.resource,
                [stored.obj],
                stored.obj["metadata"]["resourceVersion"],
                self.options.include_object,
            )
            if self._columns_sent:
                rendered["columnDefinitions"] = []
            self._columns_sent = True
            line = _dumps({"type": kind, "object": rendered})
        else:
            line = b'{"type":"' + kind.encode() + b'","object":' + stored.raw + b"}"
        await response.write(line + b"\n")
