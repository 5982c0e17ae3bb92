"""The demo's live progress: a table of each run's nodes, redrawn in place or logged as changes.

On a terminal the whole table is redrawn in place with ANSI cursor movement, so the DAG reads like
`kubectl get -w` that does not scroll. When stdout is a file or a pipe (CI logs, `| tee`), redrawing
would fill the log with copies, so the view prints one line per change instead: a node changed
phase or started another attempt, or a run changed phase.

Rendering is pure (`render_run`, `change_lines`): the tests feed known statuses and read the text.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from .status import (
    CircuitRow,
    NodeRow,
    circuit_rows,
    format_duration,
    mapping,
    node_rows,
    run_key,
    run_phase,
    text,
)

JSON = Mapping[str, Any]

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


def circuit_line(row: CircuitRow, *, colours: bool = False) -> str:
    """`circuit llm: open since 04:23:01 after 5 failures (last error: ...)`.

    Shown under the run's heading only while a breaker matters (it has failures or is not closed),
    so a healthy run's table looks the same as without breakers."""
    code = CIRCUIT_COLOURS.get(row.state)
    state = f"\x1b[{code}m{row.state}\x1b[0m" if colours and code else row.state
    line = f"  circuit {row.name}: {state}"
    if row.state != "closed" and row.opened_at is not None:
        line += f" since {row.opened_at.strftime('%H:%M:%S')}"
    if row.failures:
        line += f" after {row.failures} failure{'s' if row.failures != 1 else ''}"
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


def render_run(run: JSON, now: datetime, *, width: int = 0, colours: bool = False) -> list[str]:
    """The table of one run: a heading line, column headings, one line per node.

    `width` > 0 truncates every line to it (on a terminal a wrapped line would break redrawing)."""
    rows = node_rows(run)
    name_width = max([len(HEADINGS[0]), *(len(row.name) for row in rows)])
    lines = [_fit(run_heading(run), width)]
    # Truncate the plain text first, then colour it, so the width stays right.
    lines.extend(
        circuit_line(c, colours=colours)
        if width <= 0 or len(circuit_line(c)) <= width
        else _fit(circuit_line(c), width)
        for c in circuit_rows(run)
        if _worth_showing(c)
    )
    lines.append(
        _fit(
            f"  {HEADINGS[0]:<{name_width}}  {HEADINGS[1]:<{PHASE_WIDTH}}  "
            f"{HEADINGS[2]:>8}  {HEADINGS[3]:>8}  {HEADINGS[4]}",
            width,
        )
    )
    for row in rows:
        prefix = f"  {row.name:<{name_width}}  "
        phase_cell = f"{row.phase:<{PHASE_WIDTH}}"
        suffix = (
            f"  {row.attempts:>8}  {format_duration(row.duration(now)):>8}  {node_note(row, now)}"
        ).rstrip()
        visible = _fit(prefix + phase_cell + suffix, width)
        # Colour only the phase cell, after truncating the plain text so widths stay right.
        head = visible[: len(prefix)]
        cell = visible[len(prefix) : len(prefix) + len(phase_cell)]
        tail = visible[len(prefix) + len(phase_cell) :]
        lines.append(head + colour(cell, row.phase, colours) + tail)
    return lines


def render_frame(
    runs: Sequence[JSON], now: datetime, *, width: int = 0, colours: bool = False
) -> list[str]:
    """Every run's table, separated by a blank line."""
    lines: list[str] = []
    for index, run in enumerate(runs):
        if index:
            lines.append("")
        lines.extend(render_run(run, now, width=width, colours=colours))
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

    def __init__(self, stream: TextIO, *, interactive: bool | None = None) -> None:
        self._stream = stream
        self._interactive = stream.isatty() if interactive is None else interactive
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
        frame = render_frame(runs, now, width=width, colours=True)
        if frame == self._last_frame and self._drawn_lines:
            return  # nothing changed: redrawing would only flicker
        if self._drawn_lines:
            self._stream.write(_CURSOR_UP_AND_CLEAR.format(lines=self._drawn_lines))
        self._stream.write("\n".join(frame) + "\n")
        self._drawn_lines = len(frame)
        self._last_frame = frame
