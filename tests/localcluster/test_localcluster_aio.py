"""Bounded waits in the local cluster must never lose a cancellation (CPython gh-86296)."""

from __future__ import annotations

import asyncio

import pytest

from extraction_operator.localcluster.aio import wait_event, within


async def _cancel_as_event_fires(event: asyncio.Event) -> bool:
    """Run a wake-up loop, then set its Event and cancel it in the same iteration.

    With `asyncio.wait_for` on 3.11 the inner wait completes first and the cancellation is
    swallowed, so the loop runs on; returns whether the task really ended."""

    async def wake_loop() -> None:
        while True:
            await wait_event(event, 5)
            event.clear()

    task = asyncio.create_task(wake_loop())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1)
    if not done:
        task.cancel()
    return bool(done) and task.cancelled()


async def test_a_loop_waiting_on_an_event_stops_when_cancelled_as_the_event_fires() -> None:
    assert await _cancel_as_event_fires(asyncio.Event())


async def test_within_propagates_a_cancellation_that_races_the_result() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def consume() -> None:
        while True:
            await within(queue.get(), 5)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    queue.put_nowait(1)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1)
    assert done
    assert task.cancelled()


async def test_wait_event_reports_a_timeout_and_a_set_event() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    event.set()
    assert await wait_event(event, 0.01)
    assert await wait_event(event, None)


async def test_within_raises_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(1), 0.01)
