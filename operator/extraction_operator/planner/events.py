"""Events worth a person's attention, bounded for big fan-outs.

Each node transition that matters records one `NodeEvent`; `EventLog.finish` turns them into
Kubernetes Events. When many shards of one stage make the same transition in one reconcile (500
shards starting at once), they are folded into a single Event per (stage, reason), so a fan-out
cannot flood the API server or the run's `kubectl describe`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import truncate_utf8
from .types import EventType, PlannedEvent

# Up to this many nodes of one stage get their own Event for one reason in one plan.
AGGREGATE_ABOVE = 3
EVENT_MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class NodeEvent:
    stage: str
    node: str
    type: EventType
    reason: str
    message: str


@dataclass
class EventLog:
    node_events: list[NodeEvent] = field(default_factory=list)
    run_events: list[PlannedEvent] = field(default_factory=list)
    leading_events: list[PlannedEvent] = field(default_factory=list)

    def node(self, stage: str, node: str, type_: EventType, reason: str, message: str) -> None:
        self.node_events.append(NodeEvent(stage, node, type_, reason, message))

    def run(self, type_: EventType, reason: str, message: str, *, first: bool = False) -> None:
        """A run-level Event: after the node events (a verdict), or before them (`first`: a cause,
        such as a re-drive that makes the nodes start again)."""
        event = PlannedEvent(type_, reason, truncate_utf8(message, EVENT_MESSAGE_BYTES))
        (self.leading_events if first else self.run_events).append(event)

    def finish(self) -> list[PlannedEvent]:
        """Leading run events, node events (aggregated per stage and reason, in first-seen order),
        then the other run events."""
        groups: dict[tuple[str, str, EventType], list[NodeEvent]] = {}
        for event in self.node_events:
            groups.setdefault((event.stage, event.reason, event.type), []).append(event)
        out: list[PlannedEvent] = list(self.leading_events)
        for (stage, reason, type_), events in groups.items():
            if len(events) <= AGGREGATE_ABOVE:
                out.extend(
                    PlannedEvent(type_, reason, truncate_utf8(e.message, EVENT_MESSAGE_BYTES))
                    for e in events
                )
                continue
            names = ", ".join(e.node for e in events[:5])
            more = f" and {len(events) - 5} more" if len(events) > 5 else ""
            message = (
                f"{len(events)} nodes of stage {stage}: {names}{more}; first: {events[0].message}"
            )
            out.append(PlannedEvent(type_, reason, truncate_utf8(message, EVENT_MESSAGE_BYTES)))
        out.extend(self.run_events)
        return out
