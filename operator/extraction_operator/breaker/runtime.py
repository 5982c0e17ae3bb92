"""The breaker a stage process uses: admission, outcomes and fast failure over the shared store.

Costs on the healthy path: `begin` reads the cached document (a read at most once a second per
process) and `succeed` writes nothing while the circuit is closed with no recorded failures. Writes
happen for failures, resets (a success after failures), transitions and probe claims.

Bookkeeping never fails a stage on its own: if the API cannot be reached within the store's budget
the problem is logged and the call proceeds as if the circuit were closed. If the API refuses it
(401/403: the stage's ServiceAccount lacks the stage Role) the call proceeds the same way, but the
refusal is logged as such, with the identity and the fix (`forbidden.report_denied`).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from extraction_operator.api.models import CircuitBreakerConfig

from .api import AccessDenied, BookkeepingError
from .configs import ConfigResolver
from .document import BreakerDocument, format_timestamp
from .forbidden import report_denied
from .machine import (
    Admission,
    Change,
    Effect,
    Ticket,
    Verdict,
    admit,
    record_failure,
    record_success,
    release_probe,
)
from .store import BreakerStore, Mutation

logger = logging.getLogger(__name__)


class CircuitOpen(Exception):
    """The circuit is open (or another caller holds the probe): the call was not attempted.

    Uncaught in a stage, it makes the process exit 75 (see `extraction_operator.stage`), which the
    operator turns into a `Blocked` node that does not consume a retry.
    """

    def __init__(self, circuit: str, retry_at: float | None, last_error: str | None = None) -> None:
        self.circuit = circuit
        self.retry_at = retry_at
        self.last_error = last_error
        when = f" until {format_timestamp(retry_at)}" if retry_at is not None else ""
        cause = f" (last error: {last_error})" if last_error else ""
        super().__init__(f"circuit {circuit!r} is open{when}{cause}")


@dataclass
class OutcomeStats:
    admitted: int = 0
    probes: int = 0
    fast_failed: int = 0
    applied: int = 0
    unchanged: int = 0
    stale_ignored: int = 0
    bookkeeping_failures: int = 0
    access_denied: int = 0  # of the bookkeeping failures, those the API refused (401/403)


def new_nonce() -> str:
    return secrets.token_hex(8)


class SharedBreaker:
    def __init__(
        self,
        store: BreakerStore,
        configs: ConfigResolver,
        *,
        holder: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.configs = configs
        self.holder = holder
        self.stats = OutcomeStats()
        self._clock = clock
        self._stats_lock = threading.Lock()

    def config(self, name: str) -> CircuitBreakerConfig:
        view = self.store.cache.current()
        if view.snapshot is not None:
            self.configs.offer_spec(view.snapshot.circuit_configs)
        return self.configs.get(name)

    def _count(self, field: str) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    # ------------------------------------------------------------------------------ admission

    def begin(self, name: str) -> Ticket:
        """Admit one call on circuit `name`; raises CircuitOpen when it must not be attempted."""
        document = self.store.document()
        config = self.config(name)
        record = document.circuit(name)
        if record.state == "closed":
            self._count("admitted")
            return Ticket(name, record.generation)
        # Decide on the cached copy first: an open circuit before its recovery time needs no I/O.
        nonce = new_nonce()
        decided = admit(name, record, config, self._clock(), holder=self.holder, nonce=nonce)
        if decided.verdict is Verdict.DENY:
            self._deny(name, decided, record.last_error)

        def claim(current: BreakerDocument) -> Mutation[Admission]:
            admission = admit(
                name,
                current.circuit(name),
                config,
                self._clock(),
                holder=self.holder,
                nonce=nonce,
            )
            changed = admission.record is not current.circuit(name)
            return Mutation(
                current.with_circuit(name, admission.record) if changed else None, admission
            )

        try:
            admission = self.store.update(claim)
        except AccessDenied as exc:
            self._refused(exc)
            return Ticket(name, record.generation)
        except BookkeepingError as exc:
            self._count("bookkeeping_failures")
            logger.warning(
                "circuit %r: cannot claim the probe on run %s (%s); proceeding as if closed",
                name,
                self.store.api.description,
                exc,
            )
            return Ticket(name, record.generation)
        if admission.verdict is Verdict.DENY:
            self._deny(name, admission, admission.record.last_error)
        if admission.verdict is Verdict.PROBE:
            self._count("probes")
            logger.info("circuit %r: this process holds the probe (%s)", name, self.holder)
        else:
            self._count("admitted")
        assert admission.ticket is not None
        return admission.ticket

    def _refused(self, error: AccessDenied) -> None:
        self._count("bookkeeping_failures")
        self._count("access_denied")
        report_denied(error)

    def _deny(self, name: str, admission: Admission, last_error: str | None) -> NoReturn:
        self._count("fast_failed")
        raise CircuitOpen(name, admission.retry_at, last_error)

    # -------------------------------------------------------------------------------- outcomes

    def _apply(
        self, ticket: Ticket, step: Callable[[BreakerDocument], Change], what: str
    ) -> Effect:
        def mutate(current: BreakerDocument) -> Mutation[Effect]:
            change = step(current)
            if change.effect is Effect.APPLIED:
                return Mutation(current.with_circuit(ticket.circuit, change.record), change.effect)
            return Mutation(None, change.effect)

        # Cheap pre-check on the cache: a healthy success or a stale result needs no I/O.
        effect: Effect = step(self.store.cache.current().document).effect
        if effect is Effect.APPLIED:
            try:
                effect = self.store.update(mutate)
            except AccessDenied as exc:
                self._refused(exc)
                return Effect.UNCHANGED
            except BookkeepingError as exc:
                self._count("bookkeeping_failures")
                logger.warning(
                    "circuit %r: cannot record %s on run %s (%s); the stage carries on",
                    ticket.circuit,
                    what,
                    self.store.api.description,
                    exc,
                )
                return Effect.UNCHANGED
        self._count(
            {Effect.APPLIED: "applied", Effect.UNCHANGED: "unchanged"}.get(effect, "stale_ignored")
        )
        return effect

    def succeed(self, ticket: Ticket) -> Effect:
        config = self.config(ticket.circuit)
        return self._apply(
            ticket,
            lambda doc: record_success(doc.circuit(ticket.circuit), config, self._clock(), ticket),
            "a success",
        )

    def fail(self, ticket: Ticket, error: str | None = None) -> Effect:
        config = self.config(ticket.circuit)
        return self._apply(
            ticket,
            lambda doc: record_failure(
                doc.circuit(ticket.circuit), config, self._clock(), ticket, error
            ),
            "a failure",
        )

    def release(self, ticket: Ticket) -> Effect:
        if not ticket.is_probe:
            return Effect.UNCHANGED
        return self._apply(
            ticket,
            lambda doc: release_probe(doc.circuit(ticket.circuit), self._clock(), ticket),
            "the probe release",
        )


def default_holder() -> str:
    """A readable, unique-enough holder id: the pod (or node and attempt) and the process id.

    Uniqueness of a claim comes from the nonce; the holder is for people reading the annotation.
    """
    pod = os.environ.get("HOSTNAME", "")
    node = os.environ.get("EXTRACTION_NODE", "")
    attempt = os.environ.get("EXTRACTION_ATTEMPT", "")
    parts = [part for part in (pod, f"{node}#{attempt}" if node else "") if part]
    return f"{' '.join(parts) or 'unknown'} pid {os.getpid()}"
