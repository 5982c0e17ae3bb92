"""Runs on screen with the demo's renderer (`demo.view`, tree layout), or as JSON / YAML.

On a terminal the tree is coloured and cut to the terminal's width; into a file or a pipe it is
plain text, whole lines.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

import yaml

from extraction_operator.demo.status import run_phase
from extraction_operator.demo.view import render_frame

from .runs import JSON

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1


def terminal_width(stream: TextIO) -> int:
    """The width to cut lines to: the terminal's (less one), or 0 (no cutting) off a terminal."""
    return shutil.get_terminal_size((120, 24)).columns - 1 if stream.isatty() else 0


def tree_text(runs: Sequence[JSON], now: datetime, stream: TextIO) -> str:
    tty = stream.isatty()
    lines = render_frame(runs, now, width=terminal_width(stream), colours=tty, layout="tree")
    return "\n".join(lines) + "\n"


def document_text(runs: Sequence[JSON], output: str, *, single: bool) -> str:
    """One run as itself, several as a `List`, like `kubectl get -o json|yaml`."""
    doc = (
        dict(runs[0])
        if single
        else {"apiVersion": "v1", "kind": "List", "items": [dict(run) for run in runs]}
    )
    if output == "json":
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False))


def finished_exit_code(run: JSON) -> int:
    """0 for a Succeeded run, 1 otherwise (Failed, Stalled, deleted)."""
    return EXIT_SUCCEEDED if run_phase(run) == "Succeeded" else EXIT_FAILED
