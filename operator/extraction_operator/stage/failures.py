"""Which counted provider failures an exception carries, so the process it ends can say so.

The operator must not spend a node's retries on a provider outage, but only this process knows
that the exception ending it was a failure its breaker counted, and under which circuit generation
the call was admitted (breaker/attribution.py). `Circuit` tags the exception when it records the
failure; at the end `run_stage`, the exit hook and the example runtime look for tags along the
exception's chain and append the marker to the termination message.

The tag lives on the exception object, because that is the one thing that travels with the failure
to wherever the process ends (a later success on the same circuit does not undo it, and a failure
caught and handled leaves no trace once its exception is gone). An exception that refuses
attributes is remembered in a small process-wide map instead, holding a strong reference so that
its `id()` cannot be reused by another object while it is listed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator

logger = logging.getLogger(__name__)

_ATTRIBUTE = "_extraction_provider_failures"
# Exceptions that refuse the attribute; only the most recent few can still end the process.
_FALLBACK_SIZE = 64
_fallback: OrderedDict[int, tuple[BaseException, dict[str, int]]] = OrderedDict()
_fallback_lock = threading.Lock()
# A chain longer than this is a runaway (exceptions re-wrapped in a loop): the end is what matters.
MAX_CHAIN = 64


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def provider_failures_of(exc: BaseException) -> dict[str, int]:
    """The circuits (-> admitted generation) whose counted failure `exc` itself is."""
    try:
        found = vars(exc).get(_ATTRIBUTE)
    except Exception:  # no __dict__, or a __dict__ that misbehaves
        found = None
    if isinstance(found, dict):
        return dict(found)
    with _fallback_lock:
        entry = _fallback.get(id(exc))
    if entry is not None and entry[0] is exc:
        return dict(entry[1])
    return {}


def note_provider_failure(exc: BaseException, circuit: str, generation: int) -> None:
    """Remember that `exc` is a failure counted on `circuit`, admitted under `generation`.

    The first generation noted for a circuit is kept: it is the innermost call, the one that
    actually reached the provider. Never raises."""
    try:
        failures = provider_failures_of(exc)
        if circuit in failures:
            return
        failures[circuit] = generation
        try:
            # object.__setattr__: a frozen exception's own __setattr__ refuses; its __dict__ won't.
            object.__setattr__(exc, _ATTRIBUTE, failures)
            if vars(exc).get(_ATTRIBUTE) is failures:
                return
        except Exception:
            pass
        with _fallback_lock:
            _fallback[id(exc)] = (exc, failures)
            _fallback.move_to_end(id(exc))
            while len(_fallback) > _FALLBACK_SIZE:
                _fallback.popitem(last=False)
    except Exception:
        logger.debug("cannot tag %r as a provider failure", exc, exc_info=True)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what its traceback shows with it: the `__cause__`, else the `__context__` unless
    suppressed (`raise ... from None`), and every member of an exception group. Cycle-safe and
    bounded."""
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < MAX_CHAIN:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            pending.append(current.__context__)


def provider_failures_in(exc: BaseException) -> tuple[dict[str, int], BaseException | None]:
    """The counted provider failures along `exc`'s chain (the nearest one wins per circuit) and
    the nearest tagged exception. Never raises."""
    failures: dict[str, int] = {}
    first: BaseException | None = None
    try:
        for current in _chain(exc):
            found = provider_failures_of(current)
            if found and first is None:
                first = current
            for circuit, generation in found.items():
                failures.setdefault(circuit, generation)
    except Exception:
        logger.debug("cannot walk the chain of %r", exc, exc_info=True)
    return failures, first


def ends_with_failure(exc: BaseException) -> bool:
    """Whether `exc`, ending the process, makes it fail: not `SystemExit(0)` / `SystemExit()`
    (a clean exit) and not a KeyboardInterrupt (someone stopped it; the provider did not)."""
    if isinstance(exc, SystemExit):
        return exc.code is not None and exc.code != 0
    return not isinstance(exc, KeyboardInterrupt)
