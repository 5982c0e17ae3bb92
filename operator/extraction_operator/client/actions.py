"""Re-drive, suspend and resume: one merge patch each, and the line that confirms it.

Re-drive is the annotation `extraction.dev/redrive` set to a new value (the operator resets the
`Failed` and `Skipped` nodes to `Pending`, attempt numbers keep counting); it is refused for a run
with nothing failed unless forced, so a typo'd run name cannot restart a healthy run. Suspend and
resume set `spec.suspend`.
"""

from __future__ import annotations

from datetime import datetime

from extraction_operator.api.constants import ANNOTATION_REDRIVE
from extraction_operator.demo.status import (
    is_suspended,
    mapping,
    node_rows,
    run_key,
    run_phase,
    text,
)

from .connect import Connection
from .errors import CliError
from .runs import JSON, get_run, patch_run

REDRIVE_ATTEMPTS = 3  # a re-drive patch is conditional on the run read; re-read on a conflict
FAILED_NODE_PHASES = ("Failed", "Skipped")


def failed_nodes(run: JSON) -> list[str]:
    """The nodes a re-drive resets, in DAG order."""
    return [row.name for row in node_rows(run) if row.phase in FAILED_NODE_PHASES]


def redrive_value(now: datetime, previous: str) -> str:
    """A new annotation value: the time, made different from the previous one if it is equal."""
    value = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value if value != previous else f"{value}-2"


def redrive(conn: Connection, name: str, *, force: bool, now: datetime) -> str:
    for _ in range(REDRIVE_ATTEMPTS):
        run = get_run(conn, name)
        nodes = failed_nodes(run)
        phase = run_phase(run)
        if not nodes and phase != "Failed" and not force:
            raise CliError(
                f"extractionrun {run_key(run)} has nothing failed to re-drive (phase {phase}, no "
                "Failed or Skipped node); pass --force to re-drive it anyway"
            )
        meta = mapping(run.get("metadata"))
        previous = text(mapping(meta.get("annotations")).get(ANNOTATION_REDRIVE))
        value = redrive_value(now, previous)
        # The resourceVersion makes the patch conditional on what was judged above.
        patch = {
            "metadata": {
                "resourceVersion": text(meta.get("resourceVersion")),
                "annotations": {ANNOTATION_REDRIVE: value},
            }
        }
        try:
            patch_run(conn, name, patch)
        except CliError as error:
            if error.status == 409:
                continue  # the run changed since it was read (a status write): judge it again
            raise
        if nodes:
            listed = ", ".join(nodes)
            what = f"resets {len(nodes)} node(s) to Pending ({listed}) and resumes the run"
        else:
            what = "re-drives the run (nothing had failed: --force)"
        return (
            f"extractionrun {run_key(run)} re-driven ({ANNOTATION_REDRIVE}={value}): "
            f"the operator {what}"
        )
    raise CliError(f"extractionrun {conn.namespace}/{name} kept changing; try the re-drive again")


def set_suspend(conn: Connection, name: str, *, suspend: bool) -> str:
    run = get_run(conn, name)
    key = run_key(run)
    if is_suspended(run) == suspend:
        return f"extractionrun {key} is {'already suspended' if suspend else 'not suspended'}"
    patch_run(conn, name, {"spec": {"suspend": suspend}})
    if not suspend:
        return f"extractionrun {key} resumed (spec.suspend=false): the operator launches again"
    running = sum(1 for row in node_rows(run) if row.phase == "Running")
    return (
        f"extractionrun {key} suspended (spec.suspend=true): the operator launches nothing new; "
        f"{running} running Job(s) finish"
    )
