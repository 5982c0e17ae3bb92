"""What the demo prints at the end: a text summary, or one JSON document for scripts, and the exit
code that tells a script whether every run succeeded.

Exit codes: 0 every applied run succeeded; 1 a run failed, stalled or could not be applied;
2 the `--timeout` passed first (the runs may still have been making progress).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .status import (
    format_duration,
    is_finished,
    mapping,
    node_rows,
    parse_time,
    run_key,
    run_phase,
    text,
)
from .view import node_note

JSON = Mapping[str, Any]

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_TIMED_OUT = 2
REPORT_FILE = "report.txt"


def exit_code(runs: Sequence[JSON], *, expected: int, timed_out: bool) -> int:
    """0 only when all `expected` runs are there and Succeeded; 2 when time ran out first."""
    if len(runs) == expected and all(run_phase(run) == "Succeeded" for run in runs):
        return EXIT_SUCCEEDED
    if timed_out and not all(is_finished(run) for run in runs):
        return EXIT_TIMED_OUT
    return EXIT_FAILED


def json_document(
    runs: Sequence[JSON], jobs: Sequence[JSON], outputs: Mapping[str, Path | None] | None = None
) -> dict[str, Any]:
    """`{"runs": [...], "jobs": [...], "outputs": {...}}`: the full objects as the API server
    returned them, and per run (`namespace/name`) the host directory of its files, or null."""
    return {
        "runs": [dict(run) for run in runs],
        "jobs": [dict(job) for job in jobs],
        "outputs": {key: str(path) if path else None for key, path in (outputs or {}).items()},
    }


def run_duration(run: JSON, now: datetime) -> str:
    status = mapping(run.get("status"))
    started = parse_time(status.get("startedAt"))
    if started is None:
        return ""
    finished = parse_time(status.get("finishedAt")) or now
    return format_duration(max(0.0, (finished - started).total_seconds()))


def render_run_summary(run: JSON, now: datetime, outputs: Path | None) -> list[str]:
    status = mapping(run.get("status"))
    took = run_duration(run, now)
    progress = text(status.get("progress"))
    facts = ", ".join(
        part for part in (progress and f"{progress} nodes", took and f"took {took}") if part
    )
    lines = [f"Run {run_key(run)}: {run_phase(run)}" + (f" ({facts})" if facts else "")]
    message = " ".join(text(status.get("message")).split())
    if message:
        lines.append(f"  {message}")
    rows = node_rows(run)
    width = max([4, *(len(row.name) for row in rows)])
    for row in rows:
        attempts = f"{row.attempts} attempt{'s' if row.attempts != 1 else ''}"
        note = node_note(row, now)
        lines.append(
            f"  {row.name:<{width}}  {row.phase:<9}  {attempts:<10}  "
            f"{format_duration(row.duration(now)):>8}  {note}".rstrip()
        )
    if outputs is not None:
        lines.append(f"  Outputs: {outputs}")
        report = outputs / REPORT_FILE
        if report.is_file():
            lines.append(f"  {REPORT_FILE}:")
            lines.extend(f"    {line}" for line in report.read_text(encoding="utf-8").splitlines())
    return lines


def render_summary(
    runs: Sequence[JSON],
    now: datetime,
    outputs: Mapping[str, Path | None],
    *,
    missing: Sequence[str] = (),
) -> str:
    """The closing text: every run with its nodes, where its files are, and runs that vanished."""
    lines: list[str] = []
    for run in runs:
        if lines:
            lines.append("")
        lines.extend(render_run_summary(run, now, outputs.get(run_key(run))))
    for key in missing:
        lines.append(f"Run {key}: not found (deleted, or never created)")
    return "\n".join(lines) + "\n"
