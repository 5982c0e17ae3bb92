"""How a stage pod tells the operator that it failed *because a provider failed*.

The operator must not spend a node's retries on a provider outage (docs/circuit-breakers.md,
"Outages do not spend retries"). Only the stage process knows whether the exception that ended it
was a provider failure its breaker counted, and under which circuit generation the failing call
was admitted; the operator alone can later see whether that circuit then opened. So the stage
SDK appends one line to its termination message (the one channel from a pod to the operator that
needs no extra permission):

    extraction.dev/provider-failures: {"llm": 3}

mapping each circuit to the generation its failed call was admitted under. The operator strips
the line from the message it shows and compares the generation with the circuit's current one.
The line is untrusted input like the rest of the termination message: a malformed one is dropped
and the failure counts as an ordinary one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

MARKER_PREFIX = "extraction.dev/provider-failures: "
# Kubernetes keeps at most 4 KiB of a termination message; the marker must survive the cut.
TERMINATION_MESSAGE_LIMIT = 4096
MAX_CIRCUITS = 16
MAX_GENERATION = 10**9
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def format_marker(failures: Mapping[str, int]) -> str:
    """The marker line (no newline) for `failures`: circuit name -> admitted generation."""
    items = dict(sorted(failures.items())[:MAX_CIRCUITS])
    return MARKER_PREFIX + json.dumps(items, separators=(", ", ": "))


def with_marker(
    message: str, failures: Mapping[str, int], limit: int = TERMINATION_MESSAGE_LIMIT
) -> str:
    """`message` (any older marker removed, cut on a UTF-8 boundary) followed by the marker line,
    together at most `limit` bytes. No failures: the message alone."""
    text, _ = split_marker(message)
    text = text or ""
    if not failures:
        return text
    marker = format_marker(failures)
    room = limit - len(marker.encode("utf-8")) - 1
    body = text.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore").rstrip("\n")
    return f"{body}\n{marker}" if body else marker


def _parse(payload: str) -> dict[str, int]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    out: dict[str, int] = {}
    for name, generation in value.items():
        if len(out) >= MAX_CIRCUITS:
            break
        if (
            isinstance(name, str)
            and _NAME.match(name)
            and isinstance(generation, int)
            and not isinstance(generation, bool)
            and 0 <= generation <= MAX_GENERATION
        ):
            out[name] = generation
    return out


def split_marker(message: str | None) -> tuple[str | None, dict[str, int]]:
    """(the message without marker lines, the provider failures of the last marker line).

    Never raises; a marker that does not parse is removed and reads as no provider failure."""
    if not message or MARKER_PREFIX not in message:
        return message, {}
    kept: list[str] = []
    failures: dict[str, int] = {}
    for line in message.split("\n"):
        if line.startswith(MARKER_PREFIX):
            failures = _parse(line[len(MARKER_PREFIX) :])
        else:
            kept.append(line)
    text = "\n".join(kept).strip("\n")
    return (text or None), failures
