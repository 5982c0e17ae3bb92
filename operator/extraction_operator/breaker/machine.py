"""The pure state machine of one circuit: no I/O, no clock, no randomness.

Every function takes the current `CircuitRecord`, the circuit's config and the wall-clock time `now`
and returns what the shared record should become. Keeping it pure lets the same code run inside a
compare-and-swap retry loop (it may be applied several times to fresh copies), in the operator's
planner (read-only `view`) and in property tests of random interleavings.

Transitions:
  closed    --failureThreshold consecutive failures-->            open      (generation + 1)
  open      --recoveryTimeoutSeconds passed, a caller claims-->   half-open (generation + 1)
  half-open --successThreshold probe successes-->                 closed    (generation + 1)
  half-open --a probe failure-->                                  open      (generation + 1)

A caller carries a `Ticket` from admission to its outcome. An outcome whose ticket generation
differs from the record's is stale (the call began before a transition) and is ignored; in
half-open only the holder of the current probe lease (matched by nonce) may report.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from extraction_operator.api.models import CircuitBreakerConfig

from .document import CircuitRecord, ProbeLease, State, truncate_error
from .limits import lease_is_plausible, opened_plausibly


@dataclass(frozen=True)
class Ticket:
    """What a caller saw when it was admitted; its outcome is judged against it."""

    circuit: str
    generation: int
    nonce: str | None = None
    """Set when the caller holds the probe lease."""

    @property
    def is_probe(self) -> bool:
        return self.nonce is not None


class Verdict(enum.Enum):
    ALLOW = "allow"  # closed: call the provider
    PROBE = "probe"  # half-open and this caller now holds the lease: call once, report back
    DENY = "deny"  # open, or another caller holds the probe: fail fast


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    record: CircuitRecord
    """The record to store; `is` the input record when nothing changed (no write needed)."""
    ticket: Ticket | None
    retry_at: float | None
    """For DENY: when it is worth asking again (recovery time or probe lease expiry)."""


class Effect(enum.Enum):
    APPLIED = "applied"  # the record changed and must be written
    UNCHANGED = "unchanged"  # valid outcome that changes nothing (healthy success): no write
    STALE = "stale"  # the call began under another generation or lost its lease: ignored


@dataclass(frozen=True)
class Change:
    effect: Effect
    record: CircuitRecord


@dataclass(frozen=True)
class CircuitView:
    """The state as the operator should plan with it at time `now`.

    `state` is effective: a stored `open` whose recovery time has passed reads as `half-open`
    (a probe may start). `retry_at` is set when launching now would only fail fast: the recovery
    time of an open circuit, or the lease expiry of a probe held by someone else.
    """

    state: State
    retry_at: float | None
    record: CircuitRecord


def view(record: CircuitRecord, config: CircuitBreakerConfig, now: float) -> CircuitView:
    if record.state != "closed" and not opened_plausibly(record.opened_at, now):
        # Readers sanitize documents as they parse them (`limits.sanitize`); this is the backstop
        # for a record that skipped that: a circuit "opened" in the future holds nothing back.
        return CircuitView("closed", None, record)
    if record.state == "open":
        retry_at = (record.opened_at or 0.0) + config.recovery_timeout_seconds
        if now < retry_at:
            return CircuitView("open", retry_at, record)
        return CircuitView("half-open", None, record)
    lease = record.probe
    if (
        record.state == "half-open"
        and lease is not None
        and now < lease.expires_at
        # A lease running out later than any claim made by now could is forged: not honoured.
        and lease_is_plausible(lease.expires_at, now, config.probe_timeout_seconds)
    ):
        return CircuitView("half-open", lease.expires_at, record)
    return CircuitView(record.state, None, record)


def admit(
    name: str,
    record: CircuitRecord,
    config: CircuitBreakerConfig,
    now: float,
    *,
    holder: str,
    nonce: str,
) -> Admission:
    """Decide whether a caller may call the provider now, claiming the probe lease if it can."""
    if record.state == "closed":
        return Admission(Verdict.ALLOW, record, Ticket(name, record.generation), None)
    current = view(record, config, now)
    if current.retry_at is not None:
        return Admission(Verdict.DENY, record, None, current.retry_at)
    lease = ProbeLease(holder=holder, nonce=nonce, expires_at=now + config.probe_timeout_seconds)
    if record.state == "open":
        claimed = replace(
            record,
            state="half-open",
            successes=0,
            probe=lease,
            updated_at=now,
            generation=record.generation + 1,
        )
    else:  # half-open with no lease or an expired one: take it over, same generation
        claimed = replace(record, probe=lease, updated_at=now)
    return Admission(Verdict.PROBE, claimed, Ticket(name, claimed.generation, nonce), None)


def _holds_probe(record: CircuitRecord, ticket: Ticket) -> bool:
    return (
        record.state == "half-open"
        and ticket.nonce is not None
        and record.probe is not None
        and record.probe.nonce == ticket.nonce
    )


def _reopen(record: CircuitRecord, now: float, failures: int, error: str | None) -> CircuitRecord:
    return replace(
        record,
        state="open",
        failures=failures,
        successes=0,
        opened_at=now,
        probe=None,
        last_error=record.last_error if error is None else truncate_error(error),
        updated_at=now,
        generation=record.generation + 1,
        opens=record.opens + 1,
    )


def record_failure(
    record: CircuitRecord,
    config: CircuitBreakerConfig,
    now: float,
    ticket: Ticket,
    error: str | None = None,
) -> Change:
    """A call that counts as a provider failure ended."""
    if ticket.generation != record.generation:
        return Change(Effect.STALE, record)
    if record.state == "closed":
        failures = record.failures + 1
        if failures >= config.failure_threshold:
            return Change(Effect.APPLIED, _reopen(record, now, failures, error))
        last_error = record.last_error if error is None else truncate_error(error)
        updated = replace(record, failures=failures, last_error=last_error, updated_at=now)
        return Change(Effect.APPLIED, updated)
    if _holds_probe(record, ticket):
        return Change(Effect.APPLIED, _reopen(record, now, record.failures + 1, error))
    return Change(Effect.STALE, record)


def record_success(
    record: CircuitRecord, config: CircuitBreakerConfig, now: float, ticket: Ticket
) -> Change:
    """A call ended without a counting failure (the provider answered)."""
    if ticket.generation != record.generation:
        return Change(Effect.STALE, record)
    if record.state == "closed":
        if record.failures == 0:
            return Change(Effect.UNCHANGED, record)
        return Change(Effect.APPLIED, replace(record, failures=0, updated_at=now))
    if not _holds_probe(record, ticket):
        return Change(Effect.STALE, record)
    successes = record.successes + 1
    if successes >= config.success_threshold:
        closed = replace(
            record,
            state="closed",
            failures=0,
            successes=0,
            opened_at=None,
            probe=None,
            updated_at=now,
            generation=record.generation + 1,
        )
        return Change(Effect.APPLIED, closed)
    # Not yet closed: free the lease so the next caller probes again.
    return Change(Effect.APPLIED, replace(record, successes=successes, probe=None, updated_at=now))


def release_probe(record: CircuitRecord, now: float, ticket: Ticket) -> Change:
    """The prober ended without a verdict (cancelled, or a neutral exit code): free the lease."""
    if ticket.generation != record.generation or not _holds_probe(record, ticket):
        return Change(Effect.STALE, record)
    return Change(Effect.APPLIED, replace(record, probe=None, updated_at=now))


def invariant_violations(record: CircuitRecord, config: CircuitBreakerConfig) -> list[str]:
    """Everything that must hold of any record the machine produces (used by property tests)."""
    problems: list[str] = []
    if record.state not in ("closed", "open", "half-open"):
        problems.append(f"unknown state {record.state!r}")
    if record.state == "closed":
        if record.failures >= config.failure_threshold:
            problems.append("closed with failures at or above the threshold")
        if record.probe is not None or record.opened_at is not None or record.successes:
            problems.append("closed with probe, openedAt or successes set")
    if record.state == "open" and (record.opened_at is None or record.probe is not None):
        problems.append("open needs openedAt and no probe")
    if record.state == "half-open":
        if record.opened_at is None:
            problems.append("half-open without openedAt")
        if record.successes >= config.success_threshold:
            problems.append("half-open with successes at or above the threshold")
    if min(record.failures, record.successes, record.generation, record.opens) < 0:
        problems.append("negative counter")
    return problems
