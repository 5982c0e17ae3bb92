"""`circuit("llm")`: guard provider calls with a shared breaker, as a context manager or decorator.

    with circuit("llm"):
        reply = client.chat.completions.create(...)

    async with circuit("llm"):
        reply = await client.messages.create(...)

    @circuit("llm")
    def extract(chunk): ...

Entering raises `CircuitOpen` when the circuit is open (let it propagate: the stage exits 75).
Leaving records the outcome: no exception is a success; an exception the classifier counts
(timeouts, connection errors, 429/5xx/529 by default) is a failure; any other `Exception` is also a
success for the breaker, because the provider answered (a 400 says nothing about an outage).
`KeyboardInterrupt`, cancellation and a nested `CircuitOpen` record nothing and free a probe lease.
The exception itself always propagates unchanged; the breaker's own bookkeeping never raises.
A counted failure is also noted on the exception (circuit and admitted generation): if it ends
the process, `run_stage` and the exit hook tell the operator it was a provider failure, so that an
outage does not spend the node's retries (stage/failures.py, breaker/attribution.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from extraction_operator.breaker.classify import Classifier, default_classifier
from extraction_operator.breaker.machine import Ticket
from extraction_operator.breaker.runtime import CircuitOpen, SharedBreaker

from .environment import get_breaker
from .failures import describe_error as describe_error  # re-exported: it lived here
from .failures import note_provider_failure
from .termination import install_exit_hook

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Tickets of the calls in progress, per thread and per asyncio task, so one `Circuit` object can be
# shared (module-level `llm = circuit("llm")`) by concurrent callers.
_active: contextvars.ContextVar[tuple[tuple[int, Ticket | None], ...]] = contextvars.ContextVar(
    "extraction_circuit_tickets", default=()
)


class Circuit:
    def __init__(
        self,
        name: str,
        *,
        classifier: Classifier | None = None,
        breaker: SharedBreaker | None = None,
    ) -> None:
        self.name = name
        self._classifier = classifier
        self._breaker = breaker
        install_exit_hook()

    @property
    def breaker(self) -> SharedBreaker:
        return self._breaker if self._breaker is not None else get_breaker()

    def counts(self, exc: BaseException) -> bool:
        """Whether `exc` counts as a provider failure for this circuit."""
        if self._classifier is not None:
            return self._classifier(exc)
        recovery = self.breaker.config(self.name).recovery_timeout_seconds
        return default_classifier(recovery)(exc)

    # ------------------------------------------------------------------------- begin / finish

    def _begin(self) -> Ticket | None:
        try:
            return self.breaker.begin(self.name)
        except CircuitOpen:
            raise
        except Exception:  # a bug in bookkeeping must not fail the stage
            logger.exception("circuit %r: breaker bookkeeping failed; proceeding", self.name)
            return None

    def _finish(self, ticket: Ticket | None, exc: BaseException | None) -> None:
        if ticket is None:
            return
        try:
            breaker = self.breaker
            if exc is None:
                breaker.succeed(ticket)
            elif isinstance(exc, CircuitOpen) or not isinstance(exc, Exception):
                breaker.release(ticket)
            elif self.counts(exc):
                # Noted before recording: the operator checks the circuit itself, so a record
                # lost to a bookkeeping error only makes this an ordinary failure there.
                note_provider_failure(exc, ticket.circuit, ticket.generation)
                breaker.fail(ticket, describe_error(exc))
            else:
                breaker.succeed(ticket)
        except Exception:
            logger.exception("circuit %r: breaker bookkeeping failed; ignoring", self.name)

    def _push(self, ticket: Ticket | None) -> None:
        _active.set((*_active.get(), (id(self), ticket)))

    def _pop(self) -> Ticket | None:
        stack = list(_active.get())
        for index in range(len(stack) - 1, -1, -1):
            if stack[index][0] == id(self):
                ticket = stack.pop(index)[1]
                _active.set(tuple(stack))
                return ticket
        return None

    # --------------------------------------------------------------------------------- sync

    def __enter__(self) -> Circuit:
        self._push(self._begin())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(self._pop(), exc)

    # -------------------------------------------------------------------------------- async

    async def __aenter__(self) -> Circuit:
        # Bookkeeping does blocking HTTP at most once a second (or on failures): keep it off the
        # event loop. The context is copied into the worker thread, so push here, not there.
        self._push(await asyncio.to_thread(self._begin))
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._finish, self._pop(), exc)

    # ---------------------------------------------------------------------------- decorator

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self:
                    return await function(*args, **kwargs)

            return cast(Callable[P, R], async_guarded)

        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            with self:
                return function(*args, **kwargs)

        return guarded


def circuit(
    name: str,
    *,
    classifier: Classifier | None = None,
    breaker: SharedBreaker | None = None,
) -> Circuit:
    """A guard for calls to the provider behind circuit `name` (one of the stage's `circuits`).

    `classifier(exc) -> bool` replaces the default decision of which exceptions count as
    failures; `breaker` replaces the process-wide one built from the env (tests, custom wiring).
    """
    return Circuit(name, classifier=classifier, breaker=breaker)
