"""A de-duplicating work queue with delayed re-adds, in the manner of client-go's workqueue.

Every watch event of a run, of one of its Jobs or pods, and every timer only *marks the run
dirty*; workers then reconcile each dirty run once, however many events arrived. A run is never
reconciled by two workers at once: an event that arrives while it is being reconciled marks it
dirty again and it is processed once more after the current pass, so no event is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Use from one event loop only (kopf handlers and workers share the operator's loop)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}

    def add(self, key: K) -> None:
        """Mark `key` for reconciling as soon as a worker is free."""
        if key in self._pending:
            return
        if key in self._active:
            self._dirty.add(key)
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Mark `key` after `delay` seconds; only the earliest pending timer per key is kept."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._timers.get(key)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        handle = loop.call_at(due, self._fire, key)
        self._timers[key] = (due, handle)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        """The worker finished `key`; if it was marked again meanwhile, queue it once more."""
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: K) -> None:
        """Drop timers for a key whose object is gone."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def __len__(self) -> int:
        return len(self._pending) + len(self._dirty)

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
