"""The peering gate applies kopf's rule to the peering object's status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from extraction_operator.controller.peering import is_active

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def _peer(priority: int, seen_ago: float, lifetime: int = 20) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat(),
    }


def test_alone_or_highest_is_active() -> None:
    assert is_active({}, "me", 10, NOW)
    assert is_active({"me": _peer(10, 0)}, "me", 10, NOW)
    assert is_active({"me": _peer(10, 0), "other": _peer(5, 0)}, "me", 10, NOW)


def test_a_live_peer_with_higher_or_equal_priority_pauses_us() -> None:
    assert not is_active({"other": _peer(20, 1)}, "me", 10, NOW)
    assert not is_active({"other": _peer(10, 1)}, "me", 10, NOW)  # kopf pauses both on a tie


def test_a_dead_peer_does_not_count() -> None:
    assert is_active({"other": _peer(20, seen_ago=25, lifetime=20)}, "me", 10, NOW)


def test_malformed_records_are_ignored() -> None:
    peers = {"a": "garbage", "b": {"priority": "high", "lastseen": "x"}, "c": {"lifetime": 5}}
    assert is_active(peers, "me", 10, NOW)
