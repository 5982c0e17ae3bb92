"""A breaker document is untrusted input, even from the run's own pods (docs/security.md): every
reader holds it to plausible times and sizes before acting on it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extraction_operator.api.models import CircuitBreakerConfig
from extraction_operator.breaker import circuit_state
from extraction_operator.breaker.document import (
    MAX_COUNTER,
    MAX_DOCUMENT_CHARS,
    MAX_ERROR_CHARS,
    MAX_GENERATION,
    MAX_HOLDER_CHARS,
    format_timestamp,
    parse_document,
    parse_timestamp,
    render_document,
)
from extraction_operator.breaker.limits import CLOCK_SKEW_SECONDS
from extraction_operator.breaker.machine import Verdict, admit, view
from extraction_operator.breaker.report import summarize

NOW = 1_790_000_000.0
CONFIG = CircuitBreakerConfig(recovery_timeout_seconds=30, probe_timeout_seconds=120)
YEAR_2099 = "2099-01-01T00:00:00Z"


def document(**llm: Any) -> str:
    return json.dumps({"v": 1, "circuits": {"llm": {"generation": 3, **llm}}})


# ------------------------------------------------------------------------------------- time


def test_a_circuit_opened_in_2099_is_closed_and_the_date_is_named() -> None:
    raw = document(state="open", failures=5, openedAt=YEAR_2099)
    parsed, problem = parse_document(raw, now=NOW)
    assert parsed.circuit("llm").state == "closed"
    assert parsed.circuit("llm").generation == 4, "calls admitted under the forged state are stale"
    assert problem is not None
    assert "2099-01-01T00:00:00.000Z" in problem
    assert "treating circuit 'llm' as closed" in problem
    assert circuit_state(parsed, "llm", CONFIG, NOW) == ("closed", None)


def test_without_a_clock_the_forged_date_still_holds_nothing_back() -> None:
    """The state machine's own backstop, for a record that skipped `sanitize`."""
    parsed, _ = parse_document(document(state="open", failures=5, openedAt=YEAR_2099))
    assert parsed.circuit("llm").state == "open"
    assert circuit_state(parsed, "llm", CONFIG, NOW) == ("closed", None)


def test_an_opening_within_clock_skew_is_honest_and_kept() -> None:
    opened = NOW + CLOCK_SKEW_SECONDS - 1
    parsed, problem = parse_document(
        document(state="open", failures=5, openedAt=format_timestamp(opened)), now=NOW
    )
    assert problem is None
    assert circuit_state(parsed, "llm", CONFIG, NOW) == ("open", opened + 30)


def test_a_probe_lease_longer_than_any_lease_is_void() -> None:
    raw = document(
        state="half-open",
        failures=5,
        openedAt=format_timestamp(NOW - 60),
        probe={"holder": "evil", "nonce": "n", "expiresAt": YEAR_2099},
    )
    parsed, problem = parse_document(raw, now=NOW)
    assert parsed.circuit("llm").probe is None
    assert problem is not None
    assert "probe.expiresAt" in problem
    assert circuit_state(parsed, "llm", CONFIG, NOW) == ("half-open", None)


def test_a_lease_longer_than_this_circuits_probe_timeout_lets_the_next_caller_probe() -> None:
    """An hour is a lease some config could grant, not this one (120 s): the machine ignores it."""
    expires = NOW + 3600
    raw = document(
        state="half-open",
        failures=5,
        openedAt=format_timestamp(NOW - 60),
        probe={"holder": "evil", "nonce": "n", "expiresAt": format_timestamp(expires)},
    )
    parsed, problem = parse_document(raw, now=NOW)
    assert problem is None
    record = parsed.circuit("llm")
    assert view(record, CONFIG, NOW).retry_at is None
    admission = admit("llm", record, CONFIG, NOW, holder="honest", nonce="m")
    assert admission.verdict is Verdict.PROBE
    assert admission.record.probe is not None
    assert admission.record.probe.expires_at == NOW + 120
    honest = CircuitBreakerConfig(probe_timeout_seconds=3600)
    assert view(record, honest, NOW).retry_at == expires


def test_updated_at_in_the_future_is_dropped() -> None:
    parsed, problem = parse_document(document(state="closed", updatedAt=YEAR_2099), now=NOW)
    assert parsed.circuit("llm").updated_at is None
    assert problem is not None
    assert "updatedAt" in problem


def test_the_status_summary_shows_the_time_the_operator_acts_on() -> None:
    opened = NOW - 10
    parsed, _ = parse_document(
        document(state="open", failures=5, openedAt=format_timestamp(opened)), now=NOW
    )
    state, retry_at = circuit_state(parsed, "llm", CONFIG, NOW)
    assert state == "open"
    summary = summarize(parsed.circuit("llm"), retry_at).model_dump(by_alias=True, mode="json")
    assert summary["nextProbeAt"] == "2026-09-21T14:13:40Z"
    assert retry_at == opened + 30
    forged, _ = parse_document(document(state="open", openedAt=YEAR_2099), now=NOW)
    state, retry_at = circuit_state(forged, "llm", CONFIG, NOW)
    assert state == "closed"
    assert summarize(forged.circuit("llm"), retry_at).next_probe_at is None


@pytest.mark.parametrize("value", [1e20, 253402300800, "10000-01-01T00:00:00Z", "9" * 100])
def test_timestamps_beyond_year_9999_do_not_parse(value: object) -> None:
    assert parse_timestamp(value) is None


# ------------------------------------------------------------------------------------- size


def test_an_oversized_annotation_is_not_parsed_at_all() -> None:
    raw = document(state="closed", lastError="x" * (MAX_DOCUMENT_CHARS + 1))
    parsed, problem = parse_document(raw)
    assert parsed.circuits == {}
    assert problem is not None
    assert str(MAX_DOCUMENT_CHARS) in problem


def test_absurd_counters_are_clamped_so_status_stays_writable() -> None:
    """The API server refuses integers beyond int64: mirrored into status, 10**30 would wedge
    every status write of the run."""
    raw = document(state="closed", failures=10**30, successes=10**30, opens=10**30)
    parsed, problem = parse_document(raw)
    record = parsed.circuit("llm")
    assert (record.failures, record.successes, record.opens) == (MAX_COUNTER,) * 3
    assert problem is not None
    assert "clamped" in problem
    assert summarize(record).failures == MAX_COUNTER


def test_a_generation_beyond_exact_integers_resets_the_circuit() -> None:
    parsed, problem = parse_document(document(state="open", generation=MAX_GENERATION + 1))
    assert parsed.circuit("llm").state == "closed"
    assert parsed.circuit("llm").generation == 0
    assert problem is not None


def test_long_strings_are_cut_and_long_nonces_refused() -> None:
    holder = "h" * 10_000
    raw = document(
        state="half-open",
        openedAt=format_timestamp(NOW),
        lastError="e" * 10_000,
        probe={"holder": holder, "nonce": "n", "expiresAt": format_timestamp(NOW + 60)},
    )
    record = parse_document(raw, now=NOW)[0].circuit("llm")
    assert record.probe is not None
    assert len(record.probe.holder) == MAX_HOLDER_CHARS
    assert record.last_error is not None
    assert len(record.last_error) == MAX_ERROR_CHARS
    long_nonce = document(
        state="half-open",
        openedAt=format_timestamp(NOW),
        probe={"holder": "h", "nonce": "n" * 65, "expiresAt": format_timestamp(NOW + 60)},
    )
    parsed, problem = parse_document(long_nonce)
    assert parsed.circuit("llm").state == "closed"
    assert problem is not None
    assert "nonce" in problem


def test_circuits_are_bounded_in_number_and_name_length() -> None:
    circuits = {f"c{i}": {"state": "closed"} for i in range(100)}
    circuits["x" * 64] = {"state": "closed"}
    parsed, problem = parse_document(json.dumps({"v": 1, "circuits": circuits}))
    assert len(parsed.circuits) == 64
    assert "x" * 64 not in parsed.circuits
    assert problem is not None
    assert "more than 64 circuits" in problem


def test_a_sanitized_document_renders_and_parses_back_clean() -> None:
    raw = document(state="open", failures=10**30, openedAt=YEAR_2099, updatedAt=YEAR_2099)
    parsed, _ = parse_document(raw, now=NOW)
    again, problem = parse_document(render_document(parsed), now=NOW)
    assert problem is None
    assert again == parsed
