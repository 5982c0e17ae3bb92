"""Timeouts that never swallow a cancellation.

On Python 3.11 `asyncio.wait_for` returns the inner result when the outer task is cancelled in the
same loop iteration as the inner awaitable completes (CPython gh-86296, fixed in 3.12). A loop
that waits on a busy wake-up Event then never sees its cancellation, and whoever stops it waits
forever. `asyncio.timeout` is built on `Task.uncancel` and has no such window, so every bounded
wait in the local cluster goes through these two helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`await awaitable`, raising TimeoutError after `seconds`; a cancellation always propagates."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until `event` is set or `seconds` pass (None: no limit); True if it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
