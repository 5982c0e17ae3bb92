"""Reading node status tolerantly and writing it compactly."""

from __future__ import annotations

from datetime import UTC, datetime

from extraction_operator.planner.node_state import (
    NodeState,
    parse_node_state,
    serialize_node_state,
)

T = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)


def test_round_trip() -> None:
    state = NodeState(
        phase="Waiting",
        attempts=2,
        failures=2,
        job_name="xr-a-2",
        started_at=T,
        finished_at=T,
        next_retry_at=T,
        exit_code=3,
        reason="Error",
        message="boom",
    )
    wire = serialize_node_state(state)
    assert wire == {
        "phase": "Waiting",
        "attempts": 2,
        "failures": 2,
        "jobName": "xr-a-2",
        "startedAt": "2026-11-23T12:00:05Z",
        "finishedAt": "2026-11-23T12:00:05Z",
        "nextRetryAt": "2026-11-23T12:00:05Z",
        "exitCode": 3,
        "reason": "Error",
        "message": "boom",
    }
    assert parse_node_state(wire) == state


def test_succeeded_nodes_keep_their_message_but_drop_reason_and_exit_code() -> None:
    wire = serialize_node_state(
        NodeState(phase="Succeeded", attempts=1, exit_code=0, reason="x", message="all good")
    )
    assert wire == {"phase": "Succeeded", "attempts": 1, "message": "all good"}
    bare = serialize_node_state(NodeState(phase="Succeeded", attempts=1, exit_code=0))
    assert bare == {"phase": "Succeeded", "attempts": 1}


def test_garbage_fields_fall_back_to_defaults() -> None:
    state = parse_node_state(
        {
            "phase": "Exploded",
            "attempts": "3",
            "failures": True,
            "startedAt": "yesterday",
            "exitCode": "1",
            "message": 5,
        }
    )
    assert state == NodeState()
    assert parse_node_state(None) == NodeState()
    assert parse_node_state({"phase": "Running", "attempts": 0}).phase == "Pending"
