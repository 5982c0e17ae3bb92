"""The tree layout of the shared renderer (`demo.view`), as `get` and `watch` show a run."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from cli_kit import make_run, node
from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.demo.status import group_phase, phase_counts
from extraction_operator.demo.view import ChangeTracker, LiveView, render_run, tree_lines

NOW = datetime(2026, 11, 23, 3, 0, 10, tzinfo=UTC)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def mid_run() -> dict[str, Any]:
    return make_run(
        "Running",
        {
            "split": node("Succeeded", finished="2026-11-23T03:00:03Z", message="15 chunks"),
            "extract[0]": node(
                "Succeeded", started="2026-11-23T03:00:04Z", finished="2026-11-23T03:00:06Z"
            ),
            "extract[1]": node("Running", 2, started="2026-11-23T03:00:07Z"),
            "extract[2]": node(
                "Waiting",
                1,
                finished="2026-11-23T03:00:05Z",
                nextRetryAt="2026-11-23T03:00:12Z",
                reason="Error",
                exitCode=1,
                message="provider said no",
            ),
            "summary": node("Succeeded", finished="2026-11-23T03:00:02Z"),
        },
        progress="3/6",
        message="1 stage Job running",
        circuits={
            "llm": {
                "state": "open",
                "failures": 5,
                "openedAt": "2026-11-23T03:00:05Z",
                "nextProbeAt": "2026-11-23T03:00:35Z",
                "lastError": "HTTP 503",
            }
        },
    )


def test_the_tree_nests_stages_under_their_dependencies_with_shards_under_their_stage() -> None:
    assert render_run(mid_run(), NOW, layout="tree") == [
        "default/corpus  Running  3/6  1 stage Job running",
        "  started 2026-11-23T03:00:00Z, running for 10s",
        "  circuit llm: open since 03:00:05 after 5 failures, next probe 03:00:35 "
        "(last error: HTTP 503)",
        "  NODE                              PHASE      ATTEMPTS  DURATION  MESSAGE",
        "  split                             Succeeded         1        2s  15 chunks",
        "  ├─ extract                        Running           4        9s  "
        "3 shards: 1 Running, 1 Waiting, 1 Succeeded",
        "  │  ├─ extract[0]                  Succeeded         1        2s",
        "  │  ├─ extract[1]                  Running           2        3s",
        "  │  └─ extract[2]                  Waiting           1        4s  "
        "retry in 2s: provider said no",
        "  └─ summary                        Succeeded         1        1s",
        "     └─ merge (also after extract)  Pending           0         -",
    ]


def test_a_diamond_hangs_under_the_later_of_equally_deep_parents() -> None:
    stages = [
        {"name": "a"},
        {"name": "b", "dependsOn": ["a"]},
        {"name": "c", "dependsOn": ["a"]},
        {"name": "d", "dependsOn": ["b", "c"]},
    ]
    labels = [line.label for line in tree_lines(make_run("Pending", stages=stages))]
    assert labels == ["a", "├─ b", "└─ c", "   └─ d (also after b)"]


def test_a_stage_hangs_under_its_deepest_dependency() -> None:
    stages = [
        {"name": "a"},
        {"name": "b", "dependsOn": ["a"]},
        {"name": "c"},
        {"name": "d", "dependsOn": ["c", "b"]},
    ]
    labels = [line.label for line in tree_lines(make_run("Pending", stages=stages))]
    assert labels == ["a", "└─ b", "   └─ d (also after c)", "c"]


def test_cycles_unknown_dependencies_and_stray_nodes_still_draw_every_node() -> None:
    stages = [
        {"name": "a", "dependsOn": ["b"]},
        {"name": "b", "dependsOn": ["a", "nope", 7]},
        {"name": "a"},  # a duplicate name: the first one counts
        {"name": "c", "dependsOn": ["c"]},
    ]
    run = make_run("Running", {"ghost": node("Running")}, stages=stages)
    labels = [line.label for line in tree_lines(run)]
    assert sorted(label.split()[-1] for label in labels) == ["a", "b", "c", "ghost"]
    assert labels[-1] == "ghost"
    assert all(render_run(run, NOW, layout="tree"))


def test_closed_circuits_are_shown_and_the_summary_stands_in_without_circuits() -> None:
    closed = make_run("Running", circuits={"llm": {"state": "closed"}})
    assert "  circuit llm: closed" in render_run(closed, NOW, layout="tree")
    summary_only = make_run("Running", circuitSummary="llm: open, next probe 03:00:35Z")
    assert "  circuits: llm: open, next probe 03:00:35Z" in render_run(
        summary_only, NOW, layout="tree"
    )
    # The table (the demo) still shows a breaker only while it matters.
    assert not any("circuit" in line for line in render_run(closed, NOW))


def test_run_details_say_when_it_ran_and_whether_it_is_suspended() -> None:
    done = make_run("Succeeded", finishedAt="2026-11-23T03:01:05Z")
    assert render_run(done, NOW, layout="tree")[1] == (
        "  started 2026-11-23T03:00:00Z, finished 2026-11-23T03:01:05Z, took 1m05s"
    )
    suspended = make_run("Suspended")
    suspended["spec"]["suspend"] = True
    del suspended["status"]["startedAt"]
    assert render_run(suspended, NOW, layout="tree")[1] == (
        "  not started, suspended (spec.suspend): nothing new is launched"
    )


def test_fan_out_phase_and_counts() -> None:
    assert group_phase([]) == "Pending"
    assert group_phase(["Succeeded", "Succeeded"]) == "Succeeded"
    assert group_phase(["Succeeded", "Failed", "Running"]) == "Failed"
    assert group_phase(["Succeeded", "Pending"]) == "Running"
    assert group_phase(["Blocked", "Pending"]) == "Blocked"
    assert group_phase(["Skipped", "Pending"]) == "Pending"
    assert phase_counts(["Succeeded", "Running", "Succeeded", "Odd"]) == (
        "1 Running, 2 Succeeded, 1 Odd"
    )


def test_tree_width_and_colours_keep_lines_within_the_terminal() -> None:
    lines = render_run(mid_run(), NOW, layout="tree", width=50, colours=True)
    plain = [line.replace("\x1b[0m", "").split("\x1b[")[0] for line in lines]
    assert all(len(line) <= 50 for line in plain)
    assert any("\x1b[36mRunning  \x1b[0m" in line for line in lines)


def test_live_view_in_tree_layout_redraws_the_tree_on_a_terminal() -> None:
    terminal = FakeTerminal()
    view = LiveView(terminal, layout="tree")
    view.update([mid_run()], NOW)
    first = terminal.getvalue()
    assert "├─ extract" in first
    view.update([make_run("Succeeded", finishedAt="2026-11-23T03:00:09Z")], NOW)
    assert terminal.getvalue()[len(first) :].startswith(f"\x1b[{first.count(chr(10))}F\x1b[J")


def test_plain_changes_are_the_same_lines_in_either_layout() -> None:
    log = io.StringIO()
    LiveView(log, layout="tree").update([mid_run()], NOW)
    assert log.getvalue().splitlines() == ChangeTracker().change_lines([mid_run()], NOW)


KEYS = ["metadata", "spec", "status", "stages", "name", "shards", "dependsOn", "nodes", "phase"]
KEYS += ["attempts", "startedAt", "finishedAt", "circuits", "state", "circuitSummary", "suspend"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(run=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4))
def test_any_json_renders_as_a_tree_without_crashing(run: dict[str, Any]) -> None:
    assert render_run(run, NOW, layout="tree")[0] is not None


@settings(max_examples=100, deadline=None)
@given(
    deps=st.lists(
        st.lists(st.integers(min_value=0, max_value=5), max_size=3), min_size=1, max_size=6
    )
)
def test_every_node_of_any_graph_is_drawn_exactly_once(deps: list[list[int]]) -> None:
    stages = [
        {"name": f"s{i}", "dependsOn": [f"s{d}" for d in ds], **({"shards": 2} if i % 3 else {})}
        for i, ds in enumerate(deps)
    ]
    lines = tree_lines(make_run("Pending", stages=stages))
    drawn = [line.row.name for line in lines if not line.group]
    expected = [
        n for i in range(len(deps)) for n in ([f"s{i}"] if i % 3 == 0 else [f"s{i}[0]", f"s{i}[1]"])
    ]
    assert sorted(drawn) == sorted(expected)
