"""Operator-facing helpers: status summaries and transitions between observed documents."""

from __future__ import annotations

from datetime import UTC, datetime

from extraction_operator.breaker import circuit_summaries, detect_transitions
from extraction_operator.breaker.attribution import split_marker, with_marker
from extraction_operator.breaker.document import BreakerDocument, CircuitRecord
from extraction_operator.breaker.report import circuits_line

T0 = 1_790_000_000.0


def test_transitions_are_detected_by_generation() -> None:
    before = BreakerDocument({"llm": CircuitRecord(failures=4), "emb": CircuitRecord()})
    after = BreakerDocument(
        {
            "llm": CircuitRecord(
                state="open", failures=5, opened_at=T0, generation=1, last_error="HTTP 503"
            ),
            "emb": CircuitRecord(failures=1),
        }
    )
    changes = detect_transitions(before, after)
    assert [(c.circuit, c.before, c.after, c.reason) for c in changes] == [
        ("llm", "closed", "open", "CircuitOpened")
    ]
    assert changes[0].last_error == "HTTP 503"


def test_round_trip_through_half_open_is_still_reported() -> None:
    before = BreakerDocument({"llm": CircuitRecord(state="open", opened_at=T0, generation=1)})
    after = BreakerDocument({"llm": CircuitRecord(state="open", opened_at=T0 + 40, generation=3)})
    [change] = detect_transitions(before, after)
    assert (change.after, change.generation) == ("open", 3)


def test_half_open_and_closed_reasons() -> None:
    opened = BreakerDocument({"llm": CircuitRecord(state="open", opened_at=T0, generation=1)})
    half = BreakerDocument({"llm": CircuitRecord(state="half-open", opened_at=T0, generation=2)})
    closed = BreakerDocument({"llm": CircuitRecord(generation=3)})
    assert detect_transitions(opened, half)[0].reason == "CircuitHalfOpen"
    assert detect_transitions(half, closed)[0].reason == "CircuitClosed"
    assert detect_transitions(closed, closed) == []


def test_summaries_for_status() -> None:
    document = BreakerDocument(
        {"llm": CircuitRecord(state="open", failures=5, opened_at=T0, last_error="x" * 300)}
    )
    summary = circuit_summaries(document)["llm"]
    assert summary.state == "open"
    assert summary.failures == 5
    assert summary.opened_at == datetime.fromtimestamp(T0, tz=UTC)
    assert summary.last_error == "x" * 300
    assert summary.model_dump(by_alias=True, exclude_none=True)["openedAt"] is not None


def test_circuits_line_shows_each_state_and_the_next_probe() -> None:
    line = circuits_line(
        {
            "llm": {"state": "open", "nextProbeAt": "2026-11-23T12:03:05Z"},
            "embed": {"state": "closed"},
            "rank": {"state": "half-open"},
        }
    )
    assert line == "embed: closed; llm: open, next probe 12:03:05Z; rank: half-open, probing"
    assert len(circuits_line({f"c{i}": {"state": "open"} for i in range(200)})) == 1024


def test_attribution_marker_round_trips_and_survives_the_4kib_cut() -> None:
    text = with_marker("x" * 5000, {"llm": 3})
    assert len(text.encode()) <= 4096
    message, failures = split_marker(text)
    assert failures == {"llm": 3}
    assert message is not None
    assert "provider-failures" not in message
    assert split_marker("boom\nextraction.dev/provider-failures: {not json")[1] == {}
    assert split_marker('extraction.dev/provider-failures: {"Bad Name": 1, "ok": -1}') == (
        None,
        {},
    )
    assert with_marker("plain", {}) == "plain"
