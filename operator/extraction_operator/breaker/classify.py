"""Which exceptions count as provider failures, by duck-typing so no HTTP library is imported.

Counted: timeouts, connection errors, and HTTP 429, 5xx and 529 (Anthropic's "overloaded") on any
exception that carries a status (`status_code`, `status`, or `response.status_code`/`.status`).
Other 4xx do not count: the provider answered, the request was wrong, and opening the circuit would
not help. A 429 with a `Retry-After` no longer than the circuit's recovery time does not count
either: the provider asked for a short pause, which the caller's own retry should honour; a 429
asking for more than the recovery time is an outage as far as the pipeline is concerned.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Any

Classifier = Callable[[BaseException], bool]
"""Returns True when the exception counts as a provider failure."""

_TIMEOUT_MARKERS = ("timeout", "timedout")
# Class names of connection failures in httpx, requests, aiohttp, urllib3, openai, anthropic.
_CONNECTION_NAMES = frozenset(
    {
        "ConnectError",
        "ConnectionError",
        "NetworkError",
        "RemoteProtocolError",
        "ProtocolError",
        "ReadError",
        "WriteError",
        "APIConnectionError",
        "ClientConnectionError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "NewConnectionError",
        "MaxRetryError",
    }
)


def _class_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):  # also socket.timeout and asyncio.TimeoutError
        return True
    return any(
        marker in name.lower().replace("_", "")
        for name in _class_names(exc)
        for marker in _TIMEOUT_MARKERS
    )


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    return any(name in _CONNECTION_NAMES for name in _class_names(exc))


def _as_status(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    return None


def http_status(exc: BaseException) -> int | None:
    for attribute in ("status_code", "status"):
        status = _as_status(getattr(exc, attribute, None))
        if status is not None:
            return status
    response = getattr(exc, "response", None)
    if response is not None:
        for attribute in ("status_code", "status"):
            status = _as_status(getattr(response, attribute, None))
            if status is not None:
                return status
    return None


def _headers(exc: BaseException) -> Mapping[str, Any] | None:
    for holder in (getattr(exc, "response", None), exc):
        headers = getattr(holder, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            return headers  # type: ignore[no-any-return]
    return None


def retry_after_seconds(exc: BaseException, now: float | None = None) -> float | None:
    """The Retry-After of the exception's response in seconds (delta or HTTP-date), if any."""
    headers = _headers(exc)
    if headers is None:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def counts_as_failure(exc: BaseException, *, recovery_timeout_seconds: float) -> bool:
    """The default classification (see the module docstring)."""
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, CancelledError
        return False
    status = http_status(exc)
    if status is not None:
        if status == 429:
            pause = retry_after_seconds(exc)
            return pause is None or pause > recovery_timeout_seconds
        return status >= 500
    return is_timeout(exc) or is_connection_error(exc)


def default_classifier(recovery_timeout_seconds: float) -> Classifier:
    """The default classifier bound to one circuit's recovery time."""

    def classify(exc: BaseException) -> bool:
        return counts_as_failure(exc, recovery_timeout_seconds=recovery_timeout_seconds)

    return classify
