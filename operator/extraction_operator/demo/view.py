"""The demo's live progress: a table of each run's nodes, redrawn in place or logged as changes.

On a terminal the whole table is redrawn in place with ANSI cursor movement, so the DAG reads like
`kubectl get -w` that does not scroll. When stdout is a file or a pipe (CI logs, `| tee`), redrawing
would fill the log with copies, so the view prints one line per change instead: a node changed
phase or started another attempt, or a run changed phase.

Rendering is pure (`render_run`, `change_lines`): the tests feed known statuses and read the text.

Two layouts share the row format: `table` (the demo's default: one line per node in DAG order) and
`tree` (`extraction-operator get` / `watch`, like `argo watch`): the run's times and every circuit
under the heading, then each stage nested under the dependency it waits for longest (the others
named as `(also after ...)`), a fan-out stage as one summary line with its shards beneath it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TextIO

from .status import (
    CircuitRow,
    NodeRow,
    StageInfo,
    circuit_rows,
    circuit_summary,
    format_duration,
    group_phase,
    is_suspended,
    mapping,
    node_rows,
    phase_counts,
    run_key,
    run_phase,
    run_times,
    spec_stages,
    text,
)

JSON = Mapping[str, Any]
Layout = Literal["table", "tree"]

# SGR colours per phase, used only on a terminal.
CIRCUIT_COLOURS = {"open": "31", "half-open": "33", "closed": "32"}
PHASE_COLOURS = {
    "Succeeded": "32",
    "Failed": "31",
    "Running": "36",
    "Waiting": "33",
    "Blocked": "35",
    "Skipped": "2",
    "Pending": "2",
    "Suspended": "33",
}
HEADINGS = ("NODE", "PHASE", "ATTEMPTS", "DURATION", "MESSAGE")
PHASE_WIDTH = 9  # len("Succeeded")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CURSOR_UP_AND_CLEAR = "\x1b[{lines}F\x1b[J"


def colour(value: str, phase: str, enabled: bool) -> str:
    code = PHASE_COLOURS.get(phase)
    return f"\x1b[{code}m{value}\x1b[0m" if enabled and code else value


def node_note(row: NodeRow, now: datetime) -> str:
    """What a person wants to know about a node beyond its phase, on one line."""
    message = " ".join(row.message.split())
    if row.phase == "Waiting" and row.next_retry_at is not None:
        wait = max(0.0, (row.next_retry_at - now).total_seconds())
        cause = f": {message}" if message else ""
        return f"retry in {wait:.0f}s{cause}"
    if row.phase in ("Failed", "Blocked"):
        details = [part for part in (row.reason, _exit(row.exit_code)) if part]
        prefix = f"[{', '.join(details)}] " if details else ""
        return prefix + message
    return message


def _exit(code: int | None) -> str:
    return f"exit {code}" if code is not None else ""


def circuit_line(row: CircuitRow, *, colours: bool = False, probe: bool = False) -> str:
    """`circuit llm: open since 04:23:01 after 5 failures (last error: ...)`.

    The table shows it under the run's heading only while a breaker matters (it has failures or is
    not closed), so a healthy run's table looks the same as without breakers; the tree shows every
    breaker, with `probe=True`: when the next probe may start (`, next probe 04:23:31`)."""
    code = CIRCUIT_COLOURS.get(row.state)
    state = f"\x1b[{code}m{row.state}\x1b[0m" if colours and code else row.state
    line = f"  circuit {row.name}: {state}"
    if row.state != "closed" and row.opened_at is not None:
        line += f" since {row.opened_at.strftime('%H:%M:%S')}"
    if row.failures:
        line += f" after {row.failures} failure{'s' if row.failures != 1 else ''}"
    if probe and row.state != "closed" and row.next_probe_at is not None:
        line += f", next probe {row.next_probe_at.strftime('%H:%M:%S')}"
    if row.state != "closed" and row.last_error:
        line += f" (last error: {row.last_error})"
    return line


def _worth_showing(row: CircuitRow) -> bool:
    return row.state != "closed" or row.failures > 0


def run_heading(run: JSON) -> str:
    status = mapping(run.get("status"))
    progress = text(status.get("progress"))
    message = " ".join(text(status.get("message")).split())
    parts = [run_key(run), run_phase(run), progress, message]
    return "  ".join(part for part in parts if part)


def render_run(
    run: JSON,
    now: datetime,
    *,
    width: int = 0,
    colours: bool = False,
    layout: Layout = "table",
) -> list[str]:
    """One run: a heading line, then (`table`) its breaker lines, column headings and one line per
    node, or (`tree`) its times and every breaker, column headings and the DAG as a tree.

    `width` > 0 truncates every line to it (on a terminal a wrapped line would break redrawing)."""
    if layout == "tree":
        return _render_tree(run, now, width=width, colours=colours)
    rows = node_rows(run)
    name_width = max([len(HEADINGS[0]), *(len(row.name) for row in rows)])
    lines = [_fit(run_heading(run), width)]
    lines.extend(
        _circuit_lines([c for c in circuit_rows(run) if _worth_showing(c)], width, colours)
    )
    lines.append(_column_headings(name_width, width))
    lines.extend(
        _node_line(row.name, row, node_note(row, now), name_width, now, width, colours)
        for row in rows
    )
    return lines


def _circuit_lines(
    rows: Sequence[CircuitRow], width: int, colours: bool, *, probe: bool = False
) -> list[str]:
    # Truncate the plain text first, then colour it, so the width stays right.
    return [
        circuit_line(c, colours=colours, probe=probe)
        if width <= 0 or len(circuit_line(c, probe=probe)) <= width
        else _fit(circuit_line(c, probe=probe), width)
        for c in rows
    ]


def _column_headings(name_width: int, width: int) -> str:
    return _fit(
        f"  {HEADINGS[0]:<{name_width}}  {HEADINGS[1]:<{PHASE_WIDTH}}  "
        f"{HEADINGS[2]:>8}  {HEADINGS[3]:>8}  {HEADINGS[4]}",
        width,
    )


def _node_line(
    label: str,
    row: NodeRow,
    note: str,
    name_width: int,
    now: datetime,
    width: int,
    colours: bool,
) -> str:
    prefix = f"  {label:<{name_width}}  "
    phase_cell = f"{row.phase:<{PHASE_WIDTH}}"
    suffix = (f"  {row.attempts:>8}  {format_duration(row.duration(now)):>8}  {note}").rstrip()
    visible = _fit(prefix + phase_cell + suffix, width)
    # Colour only the phase cell, after truncating the plain text so widths stay right.
    head = visible[: len(prefix)]
    cell = visible[len(prefix) : len(prefix) + len(phase_cell)]
    tail = visible[len(prefix) + len(phase_cell) :]
    return head + colour(cell, row.phase, colours) + tail


# ---- the tree layout ---------------------------------------------------------------------------

_BRANCH, _LAST, _PIPE, _SPACE = "\u251c\u2500 ", "\u2514\u2500 ", "\u2502  ", "   "


@dataclass(frozen=True)
class TreeLine:
    """One line of the tree: the label (connectors, name, other dependencies) and the row shown;
    `group` marks the summary line of a fan-out stage (its row sums up the shards)."""

    label: str
    row: NodeRow
    group: bool = False


def _depths(stages: Sequence[StageInfo]) -> dict[str, int]:
    """Longest dependency chain above each stage (Kahn's order; a cycle's stages stay at 0)."""
    depth = {stage.name: 0 for stage in stages}
    waiting = {stage.name: len(stage.depends_on) for stage in stages}
    followers: dict[str, list[str]] = {}
    for stage in stages:
        for dep in stage.depends_on:
            followers.setdefault(dep, []).append(stage.name)
    ready = [stage.name for stage in stages if not stage.depends_on]
    while ready:
        name = ready.pop()
        for follower in followers.get(name, []):
            depth[follower] = max(depth[follower], depth[name] + 1)
            waiting[follower] -= 1
            if waiting[follower] == 0:
                ready.append(follower)
    return depth


def _tree_parents(stages: Sequence[StageInfo]) -> dict[str, str | None]:
    """Each stage hangs under the dependency with the longest chain above it (the one it waits
    for longest); a tie goes to the later stage in the spec, which is drawn later."""
    depth = _depths(stages)
    index = {stage.name: stage.index for stage in stages}
    return {
        stage.name: max(stage.depends_on, key=lambda d: (depth[d], index[d]), default=None)
        for stage in stages
    }


def _group_row(stage: str, shards: Sequence[NodeRow]) -> NodeRow:
    """The summary row of a fan-out stage: the shards' phase, attempts, span and phase counts."""
    phases = [row.phase for row in shards]
    starts = [row.started_at for row in shards if row.started_at is not None]
    finishes = [row.finished_at for row in shards if row.finished_at is not None]
    done = all(row.phase in ("Succeeded", "Failed", "Skipped") for row in shards)
    return NodeRow(
        name=stage,
        phase=group_phase(phases),
        attempts=sum(row.attempts for row in shards),
        started_at=min(starts) if starts else None,
        finished_at=max(finishes) if finishes and done else None,
        next_retry_at=None,
        exit_code=None,
        reason="",
        message=f"{len(shards)} shards: {phase_counts(phases)}",
    )


def tree_lines(run: JSON) -> list[TreeLine]:
    """The run's nodes as a tree in DAG order (see the module docstring). Nodes the status has
    but the spec does not come last, at the top level."""
    rows = {row.name: row for row in node_rows(run)}
    stages = spec_stages(run)
    by_name = {stage.name: stage for stage in stages}
    parents = _tree_parents(stages)
    children: dict[str | None, list[str]] = {}
    for stage in stages:
        children.setdefault(parents[stage.name], []).append(stage.name)
    lines: list[TreeLine] = []
    placed: set[str] = set()
    # (stage, prefix of its own line, prefix of its children's lines), drawn depth first.
    stack: list[tuple[str, str, str]] = []

    def draw(name: str, head: str, lead: str) -> None:
        stage = by_name[name]
        placed.add(name)
        others = [d for d in stage.depends_on if d != parents[name]]
        label = head + name + (f" (also after {', '.join(others)})" if others else "")
        shard_rows = [rows[node] for node in stage.nodes if node in rows]
        kids: list[str | NodeRow] = []
        if stage.shards == 1:
            lines.append(TreeLine(label, rows[name]))
        else:
            lines.append(TreeLine(label, _group_row(name, shard_rows), group=True))
            kids.extend(shard_rows)
        kids.extend(c for c in children.get(name, []) if c not in placed)
        pushed = []
        for position, kid in enumerate(kids):
            last = position == len(kids) - 1
            connector, below = (_LAST, _SPACE) if last else (_BRANCH, _PIPE)
            if isinstance(kid, NodeRow):
                lines.append(TreeLine(lead + connector + kid.name, kid))
            else:
                # Child stages come after the shards; push them so the first is drawn next.
                pushed.append((kid, lead + connector, lead + below))
        stack.extend(reversed(pushed))

    roots = [stage.name for stage in stages if parents[stage.name] is None]
    # Stages left over (a dependency cycle in an invalid spec) become roots in spec order.
    for root in [*roots, *(stage.name for stage in stages)]:
        if root in placed:
            continue
        stack.append((root, "", ""))
        while stack:
            name, head, lead = stack.pop()
            if name not in placed:
                draw(name, head, lead)
    expected = {node for stage in stages for node in stage.nodes}
    lines.extend(TreeLine(name, row) for name, row in rows.items() if name not in expected)
    return lines


def run_details(run: JSON, now: datetime) -> str:
    """`  started 2026-11-23T03:00:00Z, running for 10s` or `..., finished ..., took 1m05s`; and
    `suspended` while `spec.suspend` is set."""
    started, finished = run_times(run)
    facts = []
    if started is None:
        facts.append("not started")
    else:
        facts.append(f"started {started.strftime(TIME_FORMAT)}")
        if finished is not None:
            took = format_duration(max(0.0, (finished - started).total_seconds()))
            facts.append(f"finished {finished.strftime(TIME_FORMAT)}, took {took}")
        else:
            facts.append(f"running for {format_duration((now - started).total_seconds())}")
    if is_suspended(run):
        facts.append("suspended (spec.suspend): nothing new is launched")
    return "  " + ", ".join(facts)


def _render_tree(run: JSON, now: datetime, *, width: int, colours: bool) -> list[str]:
    entries = tree_lines(run)
    name_width = max([len(HEADINGS[0]), *(len(entry.label) for entry in entries)])
    lines = [_fit(run_heading(run), width), _fit(run_details(run, now), width)]
    circuits = circuit_rows(run)
    lines.extend(_circuit_lines(circuits, width, colours, probe=True))
    summary = circuit_summary(run)
    if summary and not circuits:
        lines.append(_fit(f"  circuits: {summary}", width))
    lines.append(_column_headings(name_width, width))
    lines.extend(
        _node_line(
            entry.label,
            entry.row,
            entry.row.message if entry.group else node_note(entry.row, now),
            name_width,
            now,
            width,
            colours,
        )
        for entry in entries
    )
    return lines


def render_frame(
    runs: Sequence[JSON],
    now: datetime,
    *,
    width: int = 0,
    colours: bool = False,
    layout: Layout = "table",
) -> list[str]:
    """Every run's table (or tree), separated by a blank line."""
    lines: list[str] = []
    for index, run in enumerate(runs):
        if index:
            lines.append("")
        lines.extend(render_run(run, now, width=width, colours=colours, layout=layout))
    return lines


def _fit(line: str, width: int) -> str:
    if width <= 0 or len(line) <= width:
        return line
    return line[: max(0, width - 1)] + "\u2026"


NodeState = tuple[str, int]  # (phase, attempts)


class ChangeTracker:
    """Remembers what was last reported, so plain output prints only what changed."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}
        self._nodes: dict[tuple[str, str], NodeState] = {}
        self._circuits: dict[tuple[str, str], str] = {}

    def change_lines(self, runs: Sequence[JSON], now: datetime) -> list[str]:
        clock = now.strftime("%H:%M:%S")
        lines = []
        for run in runs:
            key = run_key(run)
            for circuit in circuit_rows(run):
                previous_state = self._circuits.get((key, circuit.name), "closed")
                if circuit.state != previous_state:
                    self._circuits[(key, circuit.name)] = circuit.state
                    lines.append(f"{clock} {key} {circuit_line(circuit).strip()}")
            for row in node_rows(run):
                state = (row.phase, row.attempts)
                if self._nodes.get((key, row.name)) == state:
                    continue
                previous = self._nodes.get((key, row.name))
                self._nodes[(key, row.name)] = state
                if previous is None and row.phase == "Pending" and row.attempts == 0:
                    continue  # nothing has happened to it yet
                lines.append(f"{clock} {key} {row.name}: {_describe(row, now)}")
            phase = run_phase(run)
            if self._runs.get(key) != phase:
                self._runs[key] = phase
                lines.append(f"{clock} {run_heading(run)}")
        return lines


def _describe(row: NodeRow, now: datetime) -> str:
    facts = [f"attempt {row.attempts}"] if row.attempts else []
    if row.phase in ("Succeeded", "Failed"):
        facts.append(f"took {format_duration(row.duration(now))}")
    summary = f"{row.phase} ({', '.join(facts)})" if facts else row.phase
    note = node_note(row, now)
    return f"{summary}: {note}" if note else summary


class LiveView:
    """Shows runs as they progress on `stream`: redrawn in place on a terminal, else as changes."""

    def __init__(
        self, stream: TextIO, *, interactive: bool | None = None, layout: Layout = "table"
    ) -> None:
        self._stream = stream
        self._interactive = stream.isatty() if interactive is None else interactive
        self._layout: Layout = layout
        self._drawn_lines = 0
        self._last_frame: list[str] = []
        self._tracker = ChangeTracker()

    @property
    def interactive(self) -> bool:
        return self._interactive

    def update(self, runs: Sequence[JSON], now: datetime) -> None:
        if self._interactive:
            self._redraw(runs, now)
        else:
            for line in self._tracker.change_lines(runs, now):
                self._stream.write(line + "\n")
        self._stream.flush()

    def note(self, line: str) -> None:
        """A message above the live table (it is not redrawn away)."""
        if self._interactive and self._drawn_lines:
            self._stream.write(_CURSOR_UP_AND_CLEAR.format(lines=self._drawn_lines))
            self._drawn_lines = 0
            self._stream.write(line + "\n")
            self._stream.write("\n".join(self._last_frame) + "\n")
            self._drawn_lines = len(self._last_frame)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def _redraw(self, runs: Sequence[JSON], now: datetime) -> None:
        width = shutil.get_terminal_size((120, 24)).columns - 1
        frame = render_frame(runs, now, width=width, colours=True, layout=self._layout)
        if frame == self._last_frame and self._drawn_lines:
            return  # nothing changed: redrawing would only flicker
        if self._drawn_lines:
            self._stream.write(_CURSOR_UP_AND_CLEAR.format(lines=self._drawn_lines))
        self._stream.write("\n".join(frame) + "\n")
        self._drawn_lines = len(frame)
        self._last_frame = frame
