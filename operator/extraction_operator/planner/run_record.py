"""The run-level fields of status that the planner carries from one reconcile to the next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .timefmt import parse_time

RUN_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
TERMINAL_RUN_PHASES = ("Succeeded", "Failed")


@dataclass
class RunRecord:
    phase: str
    started_at: datetime | None
    finished_at: datetime | None
    redrive: str | None
    redriven_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_RUN_PHASES


def parse_run_record(status: Mapping[str, Any]) -> RunRecord:
    """Tolerant: an unknown phase reads as Pending, a bad time as absent."""
    phase = status.get("phase")
    redrive = status.get("redrive")
    return RunRecord(
        phase=phase if isinstance(phase, str) and phase in RUN_PHASES else "Pending",
        started_at=parse_time(status.get("startedAt")),
        finished_at=parse_time(status.get("finishedAt")),
        redrive=redrive if isinstance(redrive, str) else None,
        redriven_at=parse_time(status.get("redrivenAt")),
    )
