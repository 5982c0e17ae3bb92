"""The default classifier: which exceptions count as provider failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from extraction_operator.breaker.classify import (
    counts_as_failure,
    default_classifier,
    http_status,
    retry_after_seconds,
)


class FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class HTTPStatusError(Exception):  # shaped like httpx / openai / anthropic errors
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = FakeResponse(status, headers)


class APIStatusError(Exception):  # carries status_code directly
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class ClientResponseError(Exception):  # aiohttp shape: .status
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ReadTimeout(Exception):  # httpx.ReadTimeout / requests.ReadTimeout by name only
    pass


class APIConnectionError(Exception):  # openai / anthropic
    pass


class ServerTimeoutError(Exception):  # aiohttp
    pass


def counts(exc: BaseException, recovery: float = 30) -> bool:
    return counts_as_failure(exc, recovery_timeout_seconds=recovery)


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("t"),
        TimeoutError(),
        ReadTimeout(),
        ServerTimeoutError(),
        ConnectionRefusedError(),
        ConnectionResetError(),
        APIConnectionError(),
        HTTPStatusError(500),
        HTTPStatusError(503),
        APIStatusError(529),
        ClientResponseError(502),
        HTTPStatusError(429),
    ],
)
def test_counted(exc: BaseException) -> None:
    assert counts(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad prompt"),
        KeyError("x"),
        HTTPStatusError(400),
        APIStatusError(401),
        ClientResponseError(404),
        APIStatusError(422),
        KeyboardInterrupt(),
        asyncio.CancelledError(),
    ],
)
def test_not_counted(exc: BaseException) -> None:
    assert not counts(exc)


def test_429_with_short_retry_after_does_not_count_but_long_one_does() -> None:
    assert not counts(HTTPStatusError(429, {"Retry-After": "5"}), recovery=30)
    assert counts(HTTPStatusError(429, {"Retry-After": "120"}), recovery=30)
    assert counts(HTTPStatusError(429, {"retry-after": "31"}), recovery=30)


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    seconds = retry_after_seconds(HTTPStatusError(429, {"Retry-After": later}), now.timestamp())
    assert seconds == pytest.approx(90)
    assert retry_after_seconds(HTTPStatusError(429, {"Retry-After": "soon"})) is None


def test_status_attributes_that_are_not_http_statuses_are_ignored() -> None:
    odd = Exception()
    odd.status = "failed"  # type: ignore[attr-defined]
    assert http_status(odd) is None
    assert not counts(odd)


def test_default_classifier_binds_the_recovery_time() -> None:
    classify = default_classifier(recovery_timeout_seconds=10)
    assert classify(HTTPStatusError(429, {"Retry-After": "20"}))
    assert not classify(HTTPStatusError(429, {"Retry-After": "5"}))
