"""Tolerant readers of API objects' JSON: a malformed field reads as empty, never raises.

Observed Jobs, pods and Events come from the cluster as plain dicts that anyone with write access
could have shaped oddly; the planner must never crash on them, so every field access goes through
these instead of trusting the type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
