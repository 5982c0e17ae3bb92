"""Retry policy for every API call the operator makes itself (kopf retries its own watches).

Transient API trouble (429 throttling, 5xx, dropped connections, timeouts) must slow the operator
down, never crash it or lose a write. tenacity does the looping; this module only decides what is
transient and how long to wait: exponential backoff with full jitter, bounded, and never shorter
than the server's `Retry-After` when it sends one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import tenacity

from .rest import ApiError

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 6
MAX_DELAY_SECONDS = 30.0


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: throttling, server errors and network failures."""
    if isinstance(error, ApiError):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, aiohttp.ClientError | ConnectionError | asyncio.TimeoutError)


def retry_after_seconds(error: BaseException | None) -> float:
    """The server's `Retry-After` in seconds (0 when absent or not a number of seconds)."""
    if not isinstance(error, ApiError):
        return 0.0
    value = error.retry_after
    try:
        return min(max(float(value), 0.0), MAX_DELAY_SECONDS) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


class _WaitHonouringRetryAfter(tenacity.wait.wait_base):
    """Full-jitter exponential backoff, but at least what the server asked for."""

    def __init__(self) -> None:
        self._jitter = tenacity.wait_random_exponential(multiplier=0.2, max=MAX_DELAY_SECONDS)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return max(self._jitter(retry_state), retry_after_seconds(error))


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    logger.warning(
        "API call %s failed (attempt %d), retrying: %s",
        getattr(retry_state.fn, "__name__", "?"),
        retry_state.attempt_number,
        _describe(error),
    )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiError):
        return f"HTTP {error.status} {error.reason}"
    return repr(error)


def api_retrying(max_attempts: int = MAX_ATTEMPTS) -> tenacity.AsyncRetrying:
    """An AsyncRetrying for one logical API call; the last transient error is re-raised."""
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=_WaitHonouringRetryAfter(),
        stop=tenacity.stop_after_attempt(max_attempts),
        before_sleep=_log_retry,
        reraise=True,
    )


async def call_with_retry(
    call: Callable[[], Awaitable[T]], *, max_attempts: int = MAX_ATTEMPTS
) -> T:
    """Await `call()` until it succeeds or fails for good; transient failures are retried."""
    async for attempt in api_retrying(max_attempts):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
