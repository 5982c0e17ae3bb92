"""The work queue coalesces events and never runs one run in two workers at once."""

from __future__ import annotations

import asyncio

from extraction_operator.controller.workqueue import WorkQueue


async def test_duplicate_adds_coalesce_into_one_item() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_add_while_active_requeues_after_done_not_concurrently() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # an event arrives while "a" is being reconciled
    queue.add("a")
    assert len(queue) == 1
    get_next = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    assert not get_next.done(), "a key being processed must not be handed to a second worker"
    queue.done(key)
    assert await asyncio.wait_for(get_next, 1) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_add_after_keeps_the_earliest_timer() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 10.0)
    queue.add_after("a", 0.02)
    queue.add_after("a", 5.0)  # later than the pending one: ignored
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    queue.done("a")
    queue.close()


async def test_forget_cancels_a_pending_timer() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.02)
    queue.forget("a")
    await asyncio.sleep(0.05)
    assert len(queue) == 0


async def test_non_positive_delay_adds_immediately() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0)
    assert await asyncio.wait_for(queue.get(), 1) == "a"
