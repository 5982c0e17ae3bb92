"""Fault injection and the request log, for tests that check how clients survive a bad server.

Tests in another thread call these methods while the server's loop serves requests, so all state
is behind a lock and hung requests are woken through the loop with `call_soon_threadsafe`.

A rule matches a request by verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
`deletecollection`), resource plural, namespace, name and subresource (each None = any). Rules
are checked in the order they were added; the first one that matches and has uses left acts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from extraction_operator.localcluster.aio import wait_event


@dataclasses.dataclass(frozen=True)
class RequestInfo:
    """What the server understood a request to be (for matching rules and logging)."""

    verb: str
    path: str
    group: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@dataclasses.dataclass
class FaultRule:
    """One injected fault. `remaining` None means "until cleared"."""

    action: str  # "fail", "hang", "delay"
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    remaining: int | None = 1
    status: int = 500
    retry_after: float | None = None
    message: str = "injected fault"
    seconds: float | None = None
    hits: int = 0

    def matches(self, request: RequestInfo) -> bool:
        return all(
            wanted is None or wanted == actual
            for wanted, actual in (
                (self.verb, request.verb),
                (self.resource, request.resource),
                (self.namespace, request.namespace),
                (self.name, request.name),
                (self.subresource, request.subresource),
            )
        )


class FaultInjector:
    """Make matching requests fail, hang or slow down; drop watch streams. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self._drop_watches: Callable[[], int] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, drop_watches: Callable[[], int]) -> None:
        """Called by the server on start: the loop hung requests wait on, the watch dropper."""
        self._loop = loop
        self._release = asyncio.Event()
        self._drop_watches = drop_watches

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(
        self,
        verb: str | None = None,
        resource: str | None = None,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        times: int | None = 1,
        status: int = 500,
        message: str = "injected fault: internal error",
    ) -> FaultRule:
        """The next `times` matching requests get `status` (default 500) with a Status body."""
        return self._add(
            FaultRule("fail", verb, resource, namespace, name, subresource, times, status,
                      message=message)
        )  # fmt: skip

    def throttle(
        self,
        verb: str | None = None,
        resource: str | None = None,
        *,
        namespace: str | None = None,
        name: str | None = None,
        times: int | None = 1,
        retry_after: float = 1,
    ) -> FaultRule:
        """The next `times` matching requests get 429 TooManyRequests with `Retry-After`."""
        return self._add(
            FaultRule("fail", verb, resource, namespace, name, None, times, 429, retry_after,
                      message="injected fault: too many requests, please try again later")
        )  # fmt: skip

    def hang(
        self,
        verb: str | None = None,
        resource: str | None = None,
        *,
        namespace: str | None = None,
        name: str | None = None,
        times: int | None = 1,
        seconds: float | None = None,
    ) -> FaultRule:
        """The next `times` matching requests hang until `release()` or for `seconds`, then
        proceed normally (a client timeout usually gives up first)."""
        return self._add(
            FaultRule("hang", verb, resource, namespace, name, None, times, seconds=seconds)
        )

    def delay(
        self,
        seconds: float,
        verb: str | None = None,
        resource: str | None = None,
        *,
        namespace: str | None = None,
        name: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Add `seconds` of latency to matching responses (until cleared by default)."""
        return self._add(
            FaultRule("delay", verb, resource, namespace, name, None, times, seconds=seconds)
        )

    def release(self) -> None:
        """Let every currently hung request proceed."""
        loop, event = self._loop, self._release
        if loop is None or event is None or loop.is_closed():
            return

        def _release() -> None:
            event.set()
            self._release = asyncio.Event()

        loop.call_soon_threadsafe(_release)

    def drop_watches(self) -> int:
        """Close every open watch stream now; returns how many were open."""
        return self._drop_watches() if self._drop_watches is not None else 0

    def clear(self) -> None:
        """Remove every rule and release hung requests."""
        with self._lock:
            self._rules.clear()
        self.release()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, request: RequestInfo) -> list[FaultRule]:
        """The rules that act on this request (at most one fail/hang, any delays); uses them."""
        acting: list[FaultRule] = []
        with self._lock:
            blocking_taken = False
            for rule in self._rules:
                if not rule.matches(request) or (
                    rule.remaining is not None and rule.remaining <= 0
                ):
                    continue
                if rule.action != "delay":
                    if blocking_taken:
                        continue
                    blocking_taken = True
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                acting.append(rule)
            self._rules = [r for r in self._rules if r.remaining is None or r.remaining > 0]
        return acting

    async def wait_released(self, seconds: float | None) -> None:
        event = self._release
        if event is None:
            return
        await wait_event(event, seconds)


@dataclasses.dataclass
class RequestRecord:
    """One request as the server saw it; `status` is None while a watch stream is open."""

    time: float
    verb: str
    method: str
    path: str
    query: str
    group: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    user_agent: str
    status: int | None = None
    duration: float | None = None


class RequestLog:
    """Every request the server received, in arrival order. Thread-safe, bounded."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._limit = limit

    def start(
        self, request: RequestInfo, method: str, query: str, user_agent: str
    ) -> RequestRecord:
        record = RequestRecord(
            time=time.time(),
            verb=request.verb,
            method=method,
            path=request.path,
            query=query,
            group=request.group,
            resource=request.resource,
            namespace=request.namespace,
            name=request.name,
            subresource=request.subresource,
            user_agent=user_agent,
        )
        with self._lock:
            self._records.append(record)
            if len(self._records) > self._limit:
                del self._records[: len(self._records) - self._limit]
        return record

    def finish(self, record: RequestRecord, status: int) -> None:
        with self._lock:
            record.status = status
            record.duration = time.time() - record.time

    def records(self, **match: Any) -> list[RequestRecord]:
        """A snapshot of the records whose fields equal every given keyword (e.g. verb="patch")."""
        with self._lock:
            snapshot = [dataclasses.replace(r) for r in self._records]
        return [r for r in snapshot if all(getattr(r, k) == v for k, v in match.items())]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
