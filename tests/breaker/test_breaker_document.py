"""Parsing and rendering the annotation document: round trips and every kind of bad input."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.api.models import CircuitBreakerConfig
from extraction_operator.breaker import circuit_state
from extraction_operator.breaker.document import (
    EMPTY_DOCUMENT,
    MAX_ERROR_CHARS,
    BreakerDocument,
    CircuitRecord,
    ProbeLease,
    format_timestamp,
    parse_and_report,
    parse_document,
    parse_timestamp,
    render_document,
)

T0 = 1_790_000_000.125


def test_round_trip_keeps_every_field() -> None:
    record = CircuitRecord(
        state="half-open",
        failures=5,
        successes=1,
        opened_at=T0,
        probe=ProbeLease("pod-a pid 7", "abc123", T0 + 120),
        last_error="TimeoutError: read timed out",
        updated_at=T0 + 1,
        generation=4,
        opens=2,
    )
    document = BreakerDocument({"llm": record, "embeddings": CircuitRecord()})
    parsed, problem = parse_document(render_document(document))
    assert problem is None
    assert parsed == document


def test_wire_shape_uses_design_field_names() -> None:
    record = CircuitRecord(state="open", failures=5, opened_at=T0, generation=1, opens=1)
    wire = json.loads(render_document(BreakerDocument({"llm": record})))
    assert wire["v"] == 1
    llm = wire["circuits"]["llm"]
    assert llm["state"] == "open"
    assert llm["failures"] == 5
    assert llm["openedAt"] == format_timestamp(T0)
    assert llm["openedAt"].endswith("Z")
    assert llm["generation"] == 1


def test_rendering_is_deterministic() -> None:
    a = BreakerDocument({"b": CircuitRecord(failures=1), "a": CircuitRecord()})
    b = BreakerDocument({"a": CircuitRecord(), "b": CircuitRecord(failures=1)})
    assert render_document(a) == render_document(b)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_missing_annotation_is_an_empty_document_without_problem(raw: str | None) -> None:
    assert parse_document(raw) == (EMPTY_DOCUMENT, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"v": 2, "circuits": {}}', "unknown version v=2"),
        ('{"circuits": {}}', "unknown version v=None"),
        ('{"v": true, "circuits": {}}', "unknown version"),
        ('{"v": 1, "circuits": []}', "circuits must be an object"),
    ],
)
def test_unusable_documents_are_reported_and_read_as_all_closed(raw: str, expected: str) -> None:
    document, problem = parse_document(raw)
    assert document == EMPTY_DOCUMENT
    assert problem is not None
    assert expected in problem
    assert "closed" in problem


@pytest.mark.parametrize(
    ("circuit", "expected"),
    [
        ("nope", "circuits.llm must be an object"),
        ({"state": "ajar"}, "circuits.llm.state must be one of"),
        ({"failures": "3"}, "circuits.llm.failures must be a non-negative integer"),
        ({"failures": -1}, "circuits.llm.failures must be a non-negative integer"),
        ({"generation": True}, "circuits.llm.generation"),
        ({"state": "open"}, "circuits.llm.openedAt is required"),
        ({"state": "open", "openedAt": "yesterday"}, "circuits.llm.openedAt must be an RFC 3339"),
        ({"lastError": 5}, "circuits.llm.lastError must be a string"),
        (
            {"state": "half-open", "openedAt": 1, "probe": {"holder": "a"}},
            "circuits.llm.probe needs string fields",
        ),
        (
            {"state": "half-open", "openedAt": 1, "probe": {"holder": "a", "nonce": "n"}},
            "circuits.llm.probe.expiresAt is missing",
        ),
    ],
)
def test_malformed_circuit_is_reset_to_closed_and_others_kept(
    circuit: object, expected: str
) -> None:
    raw = json.dumps({"v": 1, "circuits": {"llm": circuit, "ok": {"state": "closed"}}})
    document, problem = parse_document(raw)
    assert problem is not None
    assert expected in problem
    assert document.circuit("llm").state == "closed"
    assert "ok" in document.circuits


def test_reset_circuit_gets_a_generation_above_the_broken_one() -> None:
    raw = json.dumps({"v": 1, "circuits": {"llm": {"state": "open", "generation": 7}}})
    document, problem = parse_document(raw)
    assert problem is not None
    assert document.circuit("llm").generation == 8


def test_probe_outside_half_open_is_dropped() -> None:
    raw = json.dumps(
        {
            "v": 1,
            "circuits": {
                "llm": {"state": "closed", "probe": {"holder": "a", "nonce": "n", "expiresAt": T0}}
            },
        }
    )
    document, problem = parse_document(raw)
    assert problem is None
    assert document.circuit("llm").probe is None


def test_epoch_timestamps_and_long_errors_are_accepted() -> None:
    raw = json.dumps(
        {
            "v": 1,
            "circuits": {"llm": {"state": "open", "openedAt": T0, "lastError": "e" * 5000}},
        }
    )
    document, problem = parse_document(raw)
    assert problem is None
    assert document.circuit("llm").opened_at == T0
    assert len(document.circuit("llm").last_error or "") == MAX_ERROR_CHARS


@pytest.mark.parametrize("value", [None, True, "x", float("nan"), -5, [1]])
def test_bad_timestamps_parse_to_none(value: object) -> None:
    assert parse_timestamp(value) is None


def test_timestamp_without_zone_is_utc() -> None:
    assert parse_timestamp("2026-11-23T00:00:00") == parse_timestamp("2026-11-23T00:00:00Z")


def test_parse_and_report_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        document = parse_and_report("garbage", context="ns/run")
    assert document == EMPTY_DOCUMENT
    assert "ns/run" in caplog.text
    assert "not valid JSON" in caplog.text


def test_circuit_state_for_the_operator() -> None:
    config = CircuitBreakerConfig(recovery_timeout_seconds=30)
    raw = json.dumps({"v": 1, "circuits": {"llm": {"state": "open", "openedAt": T0}}})
    document, _ = parse_document(raw)
    assert circuit_state(document, "llm", config, T0 + 1) == ("open", T0 + 30)
    assert circuit_state(document, "llm", config, T0 + 30) == ("half-open", None)
    assert circuit_state(document, "other", config, T0) == ("closed", None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        json_values.map(json.dumps),
        st.dictionaries(st.text(max_size=5), json_values, max_size=3).map(
            lambda circuits: json.dumps({"v": 1, "circuits": circuits})
        ),
    )
)
def test_parsing_never_raises(raw: str) -> None:
    document, problem = parse_document(raw)
    assert isinstance(document, BreakerDocument)
    assert problem is None or isinstance(problem, str)
    # Whatever survived parsing renders and parses back cleanly, and rendering is then stable.
    rendered = render_document(document)
    again, again_problem = parse_document(rendered)
    assert again_problem is None
    assert render_document(again) == rendered


def test_sub_millisecond_timestamps_render_stably() -> None:
    raw = json.dumps({"v": 1, "circuits": {"llm": {"state": "open", "openedAt": 1.0001234}}})
    document, _ = parse_document(raw)
    rendered = render_document(document)
    assert render_document(parse_document(rendered)[0]) == rendered
