"""How a stage tells the operator why it stopped: the termination message and exit code 75.

Kubernetes copies the file at the container's `terminationMessagePath` (default
`/dev/termination-log`, capped at 4 KiB) into the pod status, and the operator shows it as the
node's message. Exit code 75 (EX_TEMPFAIL) means "a circuit was open, I did not try": the operator
parks the node as `Blocked` instead of spending one of its retries.

Two ways to get exit 75 from an uncaught `CircuitOpen`:
- explicit: `raise SystemExit(run_stage(main))`, which also runs async mains;
- implicit: `install_exit_hook()` (done automatically by the first `circuit(...)`): an uncaught
  `CircuitOpen` reaching the interpreter prints one line instead of a traceback, writes the
  termination message, and the process exits 75 after the other atexit handlers have run.

Any other exception ending the process keeps its exit code and traceback, but when its chain holds
a provider failure a circuit counted (stage/failures.py), the marker line of
breaker/attribution.py is appended to the termination message, so that the operator can tell an
outage from a bug and not spend the node's retries on the outage.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from extraction_operator.api.constants import EXIT_CIRCUIT_OPEN
from extraction_operator.breaker.attribution import split_marker, with_marker
from extraction_operator.breaker.runtime import CircuitOpen

from .failures import describe_error, ends_with_failure, provider_failures_in

logger = logging.getLogger(__name__)

TERMINATION_MESSAGE_LIMIT = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def termination_path() -> str:
    return os.environ.get("TERMINATION_MESSAGE_PATH") or DEFAULT_TERMINATION_PATH


def write_termination_message(text: str, path: str | None = None) -> bool:
    """Write `text` (truncated to 4 KiB on a UTF-8 boundary) to `path`, else
    `$TERMINATION_MESSAGE_PATH` or `/dev/termination-log`. Returns False instead of raising when
    the file cannot be written (e.g. running outside a pod)."""
    path = path or termination_path()
    data = text.encode("utf-8")[:TERMINATION_MESSAGE_LIMIT].decode("utf-8", errors="ignore")
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(data)
    except OSError as exc:
        logger.debug("cannot write the termination message to %s: %s", path, exc)
        return False
    return True


def read_termination_message(path: str | None = None) -> str:
    """What is already in the termination file ("" when there is none or it cannot be read)."""
    try:
        with open(path or termination_path(), "rb") as handle:
            data = handle.read(TERMINATION_MESSAGE_LIMIT)
    except OSError:
        return ""
    return data.decode("utf-8", errors="ignore")


def append_provider_failures(
    failures: Mapping[str, int], description: str, path: str | None = None
) -> bool:
    """Append the provider-failure marker for `failures` (circuit -> admitted generation) to the
    termination message, keeping what the stage wrote there (its words are better than ours),
    else writing the one-line `description`. A marker already there is merged, ours winning.
    Returns whether a marker was written; never raises."""
    try:
        if not failures:
            return False
        written, earlier = split_marker(read_termination_message(path))
        body = written if written and written.strip() else " ".join(description.split())
        return write_termination_message(with_marker(body, {**earlier, **failures}), path)
    except Exception:
        logger.debug("cannot append the provider-failure marker", exc_info=True)
        return False


def mark_provider_failures(exc: BaseException, path: str | None = None) -> bool:
    """Append the marker when `exc`, ending the process, fails it and its chain (what the
    traceback shows: causes, contexts, group members) holds failures a circuit counted.

    A failure caught and handled before an unrelated error is not in that chain, so a bug after a
    provider hiccup still spends a retry; an error raised while handling the provider failure
    (`except ProviderError: sys.exit(1)`, `raise StageError(...) from exc`) is. Never raises."""
    try:
        if not ends_with_failure(exc):
            return False
        failures, tagged = provider_failures_in(exc)
        if not failures:
            return False
        description = describe_error(exc)
        if isinstance(exc, SystemExit):
            reason = exc.code if isinstance(exc.code, str) else f"exit {exc.code}"
            description = f"{reason} after {describe_error(tagged)}" if tagged else reason
        return append_provider_failures(failures, description, path)
    except Exception:
        logger.debug("cannot mark the provider failures of %r", exc, exc_info=True)
        return False


def circuit_open_in(exc: BaseException) -> CircuitOpen | None:
    """The CircuitOpen behind `exc`: itself, or the first of an exception group made only of them
    (an asyncio.TaskGroup whose tasks all hit an open circuit)."""
    if isinstance(exc, CircuitOpen):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(CircuitOpen)
        if matched is not None and rest is None:
            first = matched.exceptions[0]
            return circuit_open_in(first)
    return None


def _report(open_circuit: CircuitOpen) -> None:
    message = f"{open_circuit}; exiting {EXIT_CIRCUIT_OPEN} so the operator retries later"
    write_termination_message(message)
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_stage(main: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run a stage's `main` (sync, or async and run with asyncio.run) and return its exit code:
    75 on an uncaught CircuitOpen, `main`'s int return value, or 0. Any other exception
    propagates unchanged, after the provider-failure marker was added when it carries one."""
    try:
        result = main(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except BaseException as exc:
        open_circuit = circuit_open_in(exc)
        if open_circuit is None:
            mark_provider_failures(exc)
            raise
        _report(open_circuit)
        return EXIT_CIRCUIT_OPEN
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


_hook_lock = threading.Lock()
_hook_installed = False
_exit_with_75 = False


def _exit_hook(
    previous: Callable[[type[BaseException], BaseException, TracebackType | None], Any],
) -> Callable[[type[BaseException], BaseException, TracebackType | None], Any]:
    def hook(
        kind: type[BaseException], value: BaseException, traceback: TracebackType | None
    ) -> Any:
        global _exit_with_75
        open_circuit = circuit_open_in(value)
        if open_circuit is None:
            mark_provider_failures(value)
            return previous(kind, value, traceback)
        _exit_with_75 = True
        _report(open_circuit)
        return None

    return hook


def _exit_75_if_circuit_open() -> None:
    if _exit_with_75:
        # Handlers registered before ours would be skipped by os._exit: do logging's by hand.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(EXIT_CIRCUIT_OPEN)


def install_exit_hook() -> None:
    """Make an uncaught CircuitOpen end the process with exit code 75, and any other uncaught
    exception carrying a counted provider failure leave the marker (idempotent).

    The atexit handler is registered first so that it runs last (atexit is LIFO): every handler
    the stage registers later still runs before the process exits.
    """
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        atexit.register(_exit_75_if_circuit_open)
        sys.excepthook = _exit_hook(sys.excepthook)
        _hook_installed = True
