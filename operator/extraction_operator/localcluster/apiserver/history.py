"""Committed versions, the bounded event history and the watchers it fans out to.

Every write is one `Event` with its own resourceVersion. The history keeps the most recent ones so
a watch can resume from a version a client saw earlier; versions older than what is retained get
`410 Gone` (what etcd compaction does to a real API server). The store calls this under its
lock, so events are appended, and handed to watchers, in resourceVersion order.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from . import errors

JSON = dict[str, Any]
TypeKey = tuple[str, str]  # (group, plural)


class Stored:
    """One committed version of an object, with its JSON encoding computed at most once.

    Committed objects are never mutated, so list responses and watch events share them and the
    encoding is cached.
    """

    __slots__ = ("_item_raw", "_raw", "obj")

    def __init__(self, obj: JSON) -> None:
        self.obj = obj
        self._raw: bytes | None = None
        self._item_raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = json.dumps(self.obj, separators=(",", ":")).encode()
        return self._raw

    @property
    def item_raw(self) -> bytes:
        """The encoding as an item of a built-in kind's list: without `apiVersion` and `kind`,
        which a real API server leaves to the list (a custom resource's items keep theirs)."""
        if self._item_raw is None:
            typeless = {k: v for k, v in self.obj.items() if k not in ("apiVersion", "kind")}
            self._item_raw = json.dumps(typeless, separators=(",", ":")).encode()
        return self._item_raw

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclasses.dataclass(frozen=True)
class Event:
    """One committed change: the watch event type, the new state and the state before."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: TypeKey
    namespace: str
    current: Stored
    previous: Stored | None


class Watcher:
    """A registered watch: events of one resource (optionally one namespace) go to its queue.

    `None` in the queue means "end this stream" (a dropped watch or a server shutdown).
    """

    def __init__(self, resource: TypeKey, namespace: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()

    def deliver(self, item: Event | None) -> None:
        """Queue `item` through the loop's callback FIFO, whichever thread committed it.

        Commits happen under the store lock, so scheduling in commit order keeps the events in
        resourceVersion order even when a test thread and the loop both write.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.loop.call_soon(self.queue.put_nowait, item)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class History:
    """The retained events and the open watchers. Not locked itself: the store's lock guards it."""

    def __init__(self, size: int) -> None:
        self._events: collections.deque[Event] = collections.deque()
        self._size = size
        self._compacted_rv = 0
        self._watchers: set[Watcher] = set()

    def append(self, event: Event) -> None:
        self._events.append(event)
        while len(self._events) > self._size:
            self._compacted_rv = self._events.popleft().rv
        for watcher in self._watchers:
            if watcher.resource != event.resource:
                continue
            if watcher.namespace is not None and watcher.namespace != event.namespace:
                continue
            watcher.deliver(event)

    def since(self, rv: int, resource: TypeKey, namespace: str | None) -> list[Event]:
        """The retained events of `resource` after `rv`; 410 Gone when some were compacted."""
        if rv < self._compacted_rv:
            raise errors.gone(f"too old resource version: {rv} ({self._compacted_rv + 1})")
        return [
            e
            for e in self._events
            if e.rv > rv
            and e.resource == resource
            and (namespace is None or e.namespace == namespace)
        ]

    def add(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)

    def remove(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def drop_all(self) -> int:
        watchers: Iterable[Watcher] = list(self._watchers)
        self._watchers.clear()
        count = 0
        for watcher in watchers:
            watcher.deliver(None)
            count += 1
        return count

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def compact(self, rv: int) -> None:
        self._events.clear()
        self._compacted_rv = rv
