"""Follow one run with a real watch: list it, then watch from the list's resourceVersion.

Each watch request is bounded by the server (`timeoutSeconds`) and the next one continues from the
last resourceVersion seen (bookmarks included), so nothing is missed between them. When the server
no longer has that history (410 Gone, as an `ERROR` event or a status) the run is listed again;
when the connection drops or the server errs, the watch is retried with a growing pause, and
`on_trouble` is told once per interruption (the view shows it above the tree).

`RunWatcher` holds that logic against the small `RunSource` protocol, so the tests script it;
`KubeRunSource` is the real one on the official client. `follow_run` drives a watcher from a
thread and feeds a view, ticking on a terminal so durations move while nothing changes.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from extraction_operator.api.constants import GROUP, PLURAL, VERSION
from extraction_operator.demo.status import is_finished, mapping, redrive_pending, text

from .connect import Connection
from .errors import CliError, api_status, describe_api_error

JSON = Mapping[str, Any]
Event = tuple[str, JSON]  # ("ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK", object)
WATCH_SECONDS = 60
RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
TICK_SECONDS = 1.0
# Refusals that no retry fixes: the command ends with the API server's words.
PERMANENT_STATUSES = frozenset({401, 403, 404})


class Expired(Exception):
    """The watch's resourceVersion is older than the server's history (410 Gone)."""


class RunSource(Protocol):
    def list(self) -> tuple[JSON | None, str]:
        """The run (None when it does not exist) and the list's resourceVersion."""
        ...

    def watch(self, resource_version: str) -> Iterator[Event]:
        """The run's events after `resource_version`, until the server ends the request."""
        ...

    def stop(self) -> None:
        """End a watch in progress (called from another thread)."""
        ...


def resource_version(obj: JSON) -> str:
    return text(mapping(obj.get("metadata")).get("resourceVersion"))


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-separated frames of a streamed response, as they arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class KubeRunSource:
    """One run through the official client: a list and a watch pinned by `metadata.name`."""

    def __init__(self, conn: Connection, name: str, *, watch_seconds: int = WATCH_SECONDS) -> None:
        self._conn = conn
        self._name = name
        self._watch_seconds = watch_seconds
        self._response: Any = None
        self._stopped = False

    def _list_call(self, **options: Any) -> Any:
        return self._conn.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self._conn.namespace,
            PLURAL,
            field_selector=f"metadata.name={self._name}",
            **options,
        )

    def list(self) -> tuple[JSON | None, str]:
        listed = self._list_call()
        items = [item for item in listed.get("items") or [] if isinstance(item, dict)]
        return (items[0] if items else None), resource_version(listed)

    def watch(self, resource_version: str) -> Iterator[Event]:
        response = self._list_call(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_seconds,
            _preload_content=False,
            _request_timeout=(10, self._watch_seconds + 30),
        )
        self._response = response
        try:
            if self._stopped:
                return
            for line in _lines(response):
                event = json.loads(line)
                kind = text(mapping(event).get("type"))
                obj = mapping(mapping(event).get("object"))
                if kind == "ERROR":
                    code = obj.get("code")
                    message = text(obj.get("message"))
                    if code == 410:
                        raise Expired(message)
                    raise ApiException(status=code, reason=message or "watch error")
                yield kind, obj
        finally:
            self._response = None
            response.release_conn()

    def stop(self) -> None:
        self._stopped = True
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the read in the watching thread
            except Exception:
                pass


class RunWatcher:
    """Every state of one run, from a list and then watch events, across reconnects; None when
    the run is deleted (or does not exist at the first list)."""

    def __init__(
        self,
        source: RunSource,
        *,
        on_trouble: Callable[[str], None] = lambda _message: None,
        sleep: Callable[[float], object] | None = None,
        retry_seconds: tuple[float, ...] = RETRY_SECONDS,
    ) -> None:
        self._source = source
        self._on_trouble = on_trouble
        self._stopped = threading.Event()
        # By default a pause between retries ends early when the watcher is stopped.
        self._sleep = sleep or self._stopped.wait
        self._retry_seconds = retry_seconds

    def stop(self) -> None:
        self._stopped.set()
        self._source.stop()

    def snapshots(self) -> Iterator[JSON | None]:
        version = ""
        failures = 0
        while not self._stopped.is_set():
            try:
                if not version:
                    run, version = self._source.list()
                    yield run
                for kind, obj in self._source.watch(version):
                    version = resource_version(obj) or version
                    if failures:
                        failures = 0
                        self._on_trouble("watching again")
                    if kind == "BOOKMARK":
                        continue
                    yield None if kind == "DELETED" else obj
            except Expired:
                version = ""  # the history the watch needed is gone: list again
            except Exception as error:
                if self._stopped.is_set():
                    return
                if isinstance(error, ApiException) and api_status(error) in PERMANENT_STATUSES:
                    raise CliError(f"cannot watch the run: {describe_api_error(error)}") from None
                failures += 1
                if failures == 1:
                    cause = (
                        describe_api_error(error)
                        if api_status(error)
                        else f"{type(error).__name__}: {error}"
                    )
                    self._on_trouble(f"the watch was interrupted ({cause}); reconnecting")
                delay = self._retry_seconds[min(failures, len(self._retry_seconds)) - 1]
                self._sleep(delay)


class Watcher(Protocol):
    def snapshots(self) -> Iterator[JSON | None]: ...

    def stop(self) -> None: ...


class View(Protocol):
    @property
    def interactive(self) -> bool: ...

    def update(self, runs: list[JSON], now: datetime) -> None: ...

    def note(self, line: str) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def follow_run(
    make_watcher: Callable[[Callable[[str], None]], Watcher],
    view: View,
    *,
    forever: bool = False,
    tick: float = TICK_SECONDS,
    now: Callable[[], datetime] = utc_now,
) -> JSON | None:
    """Show the run until it finishes (or forever); returns its last state, None if deleted.
    A run that finished but has a re-drive pending is not finished: `redrive` then `watch` shows
    the re-driven run to its new end.

    The watch runs in a thread; this one draws, every change at once and on a terminal also every
    `tick` seconds, so a running node's duration counts up."""
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    watcher = make_watcher(lambda message: inbox.put(("note", message)))

    def pump() -> None:
        try:
            for snapshot in watcher.snapshots():
                inbox.put(("run", snapshot))
        except BaseException as error:
            inbox.put(("error", error))
        else:
            inbox.put(("end", None))

    thread = threading.Thread(target=pump, name="xrun-watch", daemon=True)
    thread.start()
    last: JSON | None = None
    try:
        while True:
            try:
                kind, value = inbox.get(timeout=tick if view.interactive else None)
            except queue.Empty:
                if last is not None:
                    view.update([last], now())
                continue
            if kind == "error":
                raise value
            if kind == "end":
                return last
            if kind == "note":
                view.note(value)
                continue
            if value is None:
                view.note("the run does not exist (any more): deleted")
                return None
            last = value
            view.update([last], now())
            # A finished run with a re-drive not acted on yet is about to run again: keep going.
            if not forever and is_finished(last) and not redrive_pending(last):
                return last
    finally:
        watcher.stop()
        thread.join(timeout=2)
