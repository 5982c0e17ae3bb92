"""The live view: known statuses render to known text, on a terminal and in a log."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.demo.status import format_duration, node_rows, parse_time
from extraction_operator.demo.view import ChangeTracker, LiveView, render_run

# Keys the view reads, so random documents reach the interesting code paths.
KEYS = [
    "metadata",
    "spec",
    "status",
    "stages",
    "name",
    "shards",
    "nodes",
    "phase",
    "attempts",
    "startedAt",
    "finishedAt",
    "nextRetryAt",
    "exitCode",
    "message",
    "conditions",
    "progress",
]
Factory = Callable[..., dict[str, Any]]
NOW = datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_lists_nodes_in_dag_order_with_phase_attempts_duration_and_notes(
    running_run: dict[str, Any],
) -> None:
    lines = render_run(running_run, NOW)
    assert lines[0] == "default/pipeline  Running  1/4  2 stage Jobs running"
    assert lines[1].split() == ["NODE", "PHASE", "ATTEMPTS", "DURATION", "MESSAGE"]
    assert [line.split()[:4] for line in lines[2:]] == [
        ["chunk", "Succeeded", "1", "2s"],
        ["mentions[0]", "Running", "1", "6s"],
        ["mentions[1]", "Waiting", "1", "4s"],
        ["entities", "Pending", "0", "-"],
    ]
    assert lines[2].endswith("15 chunks")
    assert lines[4].endswith("retry in 2s: deliberate failure of attempt 1")


def test_failed_nodes_show_reason_exit_code_and_message(make_run: Factory, node: Factory) -> None:
    run = make_run(
        "Failed",
        {"chunk": node("Failed", 1, reason="NonRetryable", exitCode=2, message="bad input: x")},
    )
    assert render_run(run, NOW)[2].endswith("[NonRetryable, exit 2] bad input: x")


def test_width_truncates_every_line(make_run: Factory, node: Factory) -> None:
    run = make_run("Running", {"chunk": node("Running", message="x" * 300)})
    assert all(len(line) <= 40 for line in render_run(run, NOW, width=40))


def test_colours_wrap_only_the_phase_cell(running_run: dict[str, Any]) -> None:
    lines = render_run(running_run, NOW, colours=True)
    assert "\x1b[32mSucceeded\x1b[0m" in lines[2]
    assert "\x1b[36mRunning  \x1b[0m" in lines[3]


def test_terminal_view_redraws_in_place(running_run: dict[str, Any]) -> None:
    terminal = FakeTerminal()
    view = LiveView(terminal)
    view.update([running_run], NOW)
    first = terminal.getvalue()
    assert "\x1b[" not in first.split("\n")[0]  # nothing to erase before the first frame
    view.update([running_run], NOW)
    assert terminal.getvalue() == first  # an unchanged frame is not redrawn
    running_run["status"]["nodes"]["mentions[0]"]["phase"] = "Succeeded"
    view.update([running_run], NOW)
    second = terminal.getvalue()[len(first) :]
    assert second.startswith("\x1b[6F\x1b[J")  # up over the 6 lines drawn, clear, redraw
    assert "mentions[1]" in second


def test_plain_view_prints_only_changes(running_run: dict[str, Any]) -> None:
    log = io.StringIO()
    view = LiveView(log)
    assert not view.interactive
    view.update([running_run], NOW)
    view.update([running_run], NOW)
    lines = log.getvalue().splitlines()
    assert lines == [
        "03:00:10 default/pipeline chunk: Succeeded (attempt 1, took 2s): 15 chunks",
        "03:00:10 default/pipeline mentions[0]: Running (attempt 1)",
        "03:00:10 default/pipeline mentions[1]: Waiting (attempt 1): "
        "retry in 2s: deliberate failure of attempt 1",
        "03:00:10 default/pipeline  Running  1/4  2 stage Jobs running",
    ]


def test_change_tracker_reports_a_new_attempt_of_the_same_phase(
    make_run: Factory, node: Factory
) -> None:
    tracker = ChangeTracker()
    tracker.change_lines([make_run("Running", {"chunk": node("Running", 1)})], NOW)
    lines = tracker.change_lines([make_run("Running", {"chunk": node("Running", 2)})], NOW)
    assert lines == ["03:00:10 default/pipeline chunk: Running (attempt 2)"]


def test_malformed_status_renders_without_crashing() -> None:
    broken: list[dict[str, Any]] = [
        {},
        {"status": "oops", "spec": []},
        {"status": {"nodes": {"a": "b", "c": {"attempts": "two", "startedAt": "yesterday"}}}},
        {"status": {"nodes": None, "phase": 7}, "metadata": {"name": 5}},
    ]
    for run in broken:
        assert render_run(run, NOW)
    assert [row.attempts for row in node_rows(broken[2])] == [0, 0]


def test_time_and_duration_helpers() -> None:
    assert parse_time("2026-11-23T03:00:01Z") == datetime(2026, 11, 23, 3, 0, 1, tzinfo=UTC)
    assert parse_time("2026-11-23T03:00:01.5+00:00") is not None
    assert parse_time("soon") is None
    assert [format_duration(s) for s in (None, 0, 0.42, 2, 59.9, 185)] == [
        "-",
        "<1s",
        "0.4s",
        "2s",
        "59.9s",
        "3m05s",
    ]


def test_nodes_without_status_are_expanded_from_the_spec(make_run: Factory) -> None:
    run = make_run("Pending")
    assert [row.name for row in node_rows(run)] == [
        "chunk",
        "mentions[0]",
        "mentions[1]",
        "entities",
    ]
    run["spec"]["stages"][1]["shards"] = 10**9
    assert len(node_rows(run)) == 502  # bounded by the API's shard limit


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(run=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4))
def test_any_json_renders_without_crashing(run: dict[str, Any]) -> None:
    assert render_run(run, NOW)[0] is not None
    ChangeTracker().change_lines([run], NOW)


def test_a_note_on_a_terminal_goes_above_the_table(running_run: dict[str, Any]) -> None:
    terminal = FakeTerminal()
    view = LiveView(terminal)
    view.update([running_run], NOW)
    drawn = terminal.getvalue()
    view.note("could not read the runs; retrying")
    added = terminal.getvalue()[len(drawn) :]
    assert added.startswith("\x1b[6F\x1b[Jcould not read the runs; retrying\n")
    assert added.endswith(drawn)  # the table is drawn again below the note
