"""The watch loop against a scripted source: list, watch, reconnect, relist on 410, and the
following loop that feeds the view and decides when to stop."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cli_kit import make_run, node
from kubernetes.client.exceptions import ApiException

from extraction_operator.client.errors import CliError
from extraction_operator.client.watching import (
    Event,
    Expired,
    KubeRunSource,
    RunWatcher,
    follow_run,
)
from extraction_operator.demo.view import LiveView

NOW = datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC)
JSON = dict[str, Any]


def run_at(version: str, phase: str = "Running") -> JSON:
    return make_run(phase, {"split": node(phase)}, resource_version=version)


class Exhausted(BaseException):
    """The script is over (a BaseException, so the watcher's retry logic lets it through)."""


class ScriptedSource:
    """`lists` are returned by successive list() calls; each watch() call plays the next script:
    events, and possibly an exception raised after them (the last item)."""

    def __init__(self, lists: list[tuple[JSON | None, str]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.calls: list[str] = []
        self.stopped = False

    def list(self) -> tuple[JSON | None, str]:
        self.calls.append("list")
        if not self.lists:
            raise Exhausted
        return self.lists.pop(0)

    def watch(self, resource_version: str) -> Iterator[Event]:
        self.calls.append(f"watch@{resource_version}")
        if not self.watches:
            raise Exhausted
        for item in self.watches.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.stopped = True


def collect(watcher: RunWatcher) -> list[str]:
    """The versions the watcher yields ("deleted" for None) until the script runs out."""
    seen = []
    with contextlib.suppress(Exhausted):
        for snapshot in watcher.snapshots():
            seen.append("deleted" if snapshot is None else snapshot["metadata"]["resourceVersion"])
    return seen


def test_lists_then_watches_from_the_list_version_and_follows_bookmarks() -> None:
    source = ScriptedSource(
        [(run_at("10"), "12")],
        [
            [
                ("MODIFIED", run_at("13")),
                ("BOOKMARK", {"metadata": {"resourceVersion": "20"}}),
            ],
            [("MODIFIED", run_at("21")), ("DELETED", run_at("22"))],
        ],
    )
    assert collect(RunWatcher(source)) == ["10", "13", "21", "deleted"]
    # Each new watch request continues from the last version seen, bookmarks included.
    assert source.calls == ["list", "watch@12", "watch@20", "watch@22"]


def test_an_expired_version_lists_again() -> None:
    source = ScriptedSource(
        [(run_at("10"), "10"), (run_at("50"), "55")],
        [[("MODIFIED", run_at("11")), Expired("too old resource version: 11 (40)")], []],
    )
    notes: list[str] = []
    assert collect(RunWatcher(source, on_trouble=notes.append)) == ["10", "11", "50"]
    assert source.calls == ["list", "watch@10", "list", "watch@55", "watch@55"]
    assert notes == []  # an expiry is routine: nothing to tell


def test_a_dropped_connection_is_noted_once_and_the_watch_resumes_from_the_same_version() -> None:
    pauses: list[float] = []
    source = ScriptedSource(
        [(run_at("10"), "10")],
        [
            [ConnectionResetError("peer reset")],
            [ApiException(status=500, reason="Internal Server Error")],
            [("MODIFIED", run_at("11"))],
        ],
    )
    notes: list[str] = []
    watcher = RunWatcher(source, on_trouble=notes.append, sleep=pauses.append)
    assert collect(watcher) == ["10", "11"]
    assert source.calls == ["list", "watch@10", "watch@10", "watch@10", "watch@11"]
    assert pauses == [0.5, 1.0]
    assert notes == [
        "the watch was interrupted (ConnectionResetError: peer reset); reconnecting",
        "watching again",
    ]


def test_a_refusal_no_retry_fixes_ends_the_watch_with_the_api_servers_words() -> None:
    body = json.dumps({"message": 'extractionruns.extraction.dev is forbidden: User "x" cannot'})
    source = ScriptedSource(
        [(run_at("10"), "10")], [[ApiException(status=403, reason="Forbidden")]]
    )
    source.watches[0][0].body = body
    watcher = RunWatcher(source)
    with pytest.raises(CliError, match=r"cannot watch the run: .*forbidden.* \(403 Forbidden\)"):
        collect(watcher)


class FakeResponse:
    """A streamed HTTP response in arbitrary chunks, as urllib3 hands them over."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.released = False

    def stream(self, amt: Any = None, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True

    def shutdown(self) -> None:
        pass


class FakeCustom:
    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.kwargs: dict[str, Any] = {}

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        self.kwargs = kwargs
        if kwargs.get("watch"):
            return self.response
        return {"metadata": {"resourceVersion": "7"}, "items": [run_at("7")]}


class FakeConnection:
    namespace = "default"

    def __init__(self, custom: FakeCustom) -> None:
        self.custom = custom


def frames(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def test_the_real_source_reads_events_split_across_chunks_and_turns_410_into_expired() -> None:
    data = frames(
        {"type": "MODIFIED", "object": run_at("8")},
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}},
    )
    response = FakeResponse([data[:5], data[5:70], data[70:]])
    custom = FakeCustom(response)
    source = KubeRunSource(FakeConnection(custom), "corpus", watch_seconds=30)  # type: ignore[arg-type]
    assert source.list() == (run_at("7"), "7")
    events = source.watch("7")
    kind, obj = next(events)
    assert (kind, obj["metadata"]["resourceVersion"]) == ("MODIFIED", "8")
    with pytest.raises(Expired, match="too old"):
        next(events)
    assert response.released
    assert custom.kwargs["field_selector"] == "metadata.name=corpus"
    assert custom.kwargs["resource_version"] == "7"
    assert custom.kwargs["timeout_seconds"] == 30
    assert custom.kwargs["allow_watch_bookmarks"] is True


def test_other_watch_errors_are_api_errors_for_the_retry_logic() -> None:
    response = FakeResponse(
        [frames({"type": "ERROR", "object": {"code": 500, "message": "etcd is sad"}})]
    )
    source = KubeRunSource(FakeConnection(FakeCustom(response)), "corpus")  # type: ignore[arg-type]
    with pytest.raises(ApiException) as raised:
        list(source.watch("1"))
    assert raised.value.status == 500


class ListWatcher:
    """A watcher whose snapshots are a fixed list (then it waits until stopped)."""

    def __init__(self, snapshots: list[JSON | None]) -> None:
        self.items = snapshots
        self.stopped = False

    def snapshots(self) -> Iterator[JSON | None]:
        yield from self.items

    def stop(self) -> None:
        self.stopped = True


def test_following_stops_when_the_run_finishes_and_prints_each_change() -> None:
    log = io.StringIO()
    watcher = ListWatcher(
        [run_at("1"), run_at("2", "Failed"), run_at("3", "Succeeded")]  # after Failed: not read
    )
    last = follow_run(lambda note: watcher, LiveView(log, layout="tree"), now=lambda: NOW)
    assert last is not None
    assert last["status"]["phase"] == "Failed"
    assert watcher.stopped
    assert log.getvalue().splitlines() == [
        "03:00:10 default/corpus split: Running (attempt 1)",
        "03:00:10 default/corpus  Running",
        "03:00:10 default/corpus split: Failed (attempt 1, took 9s)",
        "03:00:10 default/corpus  Failed",
    ]


def test_following_forever_goes_on_past_the_end_and_a_deletion_ends_it() -> None:
    log = io.StringIO()
    watcher = ListWatcher([run_at("1", "Failed"), run_at("2", "Running"), None])
    last = follow_run(
        lambda note: watcher,
        LiveView(log, layout="tree"),
        forever=True,
        now=lambda: NOW,
    )
    assert last is None
    assert log.getvalue().splitlines()[-1] == "the run does not exist (any more): deleted"


def test_a_terminal_is_redrawn_every_tick_while_nothing_changes() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    class SlowWatcher(ListWatcher):
        def snapshots(self) -> Iterator[JSON | None]:
            yield run_at("1")
            time.sleep(0.35)
            yield run_at("2", "Succeeded")

    clock = iter(datetime(2026, 11, 23, 3, 0, s, tzinfo=UTC) for s in range(10, 60))
    terminal = Terminal()
    watcher = SlowWatcher([])
    last = follow_run(
        lambda note: watcher,
        LiveView(terminal, layout="tree"),
        tick=0.1,
        now=lambda: next(clock),
    )
    assert last is not None
    assert last["status"]["phase"] == "Succeeded"
    # The running node's duration counted up between the two events: redrawn in place.
    assert terminal.getvalue().count("\x1b[J") >= 2
    assert "running for 12s" in terminal.getvalue()


def test_notes_from_the_watcher_go_above_the_view() -> None:
    log = io.StringIO()

    class NotingWatcher(ListWatcher):
        def __init__(self, note: Any) -> None:
            super().__init__([run_at("1", "Succeeded")])
            note("the watch was interrupted (x); reconnecting")

    follow_run(NotingWatcher, LiveView(log, layout="tree"), now=lambda: NOW)
    lines = log.getvalue().splitlines()
    assert lines[0] == "the watch was interrupted (x); reconnecting"
    assert lines[-1] == "03:00:10 default/corpus  Succeeded"


def test_a_finished_run_with_a_redrive_not_yet_acted_on_is_followed_further() -> None:
    log = io.StringIO()
    asked = run_at("1", "Failed")
    asked["metadata"]["annotations"] = {"extraction.dev/redrive": "2026-11-23T03:00:09Z"}
    acted = copy.deepcopy(asked)
    acted["status"]["phase"] = "Running"
    acted["status"]["redrive"] = "2026-11-23T03:00:09Z"
    done = copy.deepcopy(acted)
    done["status"]["phase"] = "Succeeded"
    watcher = ListWatcher([asked, acted, done])
    last = follow_run(lambda note: watcher, LiveView(log), now=lambda: NOW)
    assert last is done
