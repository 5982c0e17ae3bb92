"""Transient API failures are retried with backoff that honours Retry-After; others are not."""

from __future__ import annotations

import aiohttp
import pytest
import tenacity

from extraction_operator.controller import retry
from extraction_operator.controller.rest import ApiError


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ApiError(429, "TooManyRequests", "slow down"), True),
        (ApiError(500, "InternalError", "boom"), True),
        (ApiError(503, "ServiceUnavailable", "x"), True),
        (ApiError(409, "Conflict", "stale"), False),
        (ApiError(422, "Invalid", "bad"), False),
        (ApiError(404, "NotFound", "gone"), False),
        (aiohttp.ClientConnectionError("reset"), True),
        (TimeoutError(), True),
        (ValueError("bug"), False),
    ],
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert retry.is_transient(error) is transient


def test_retry_after_is_parsed_and_bounded() -> None:
    assert retry.retry_after_seconds(ApiError(429, "", "", retry_after="3")) == 3.0
    assert retry.retry_after_seconds(ApiError(429, "", "", retry_after="9999")) == (
        retry.MAX_DELAY_SECONDS
    )
    assert retry.retry_after_seconds(ApiError(429, "", "", retry_after="soon")) == 0.0
    assert retry.retry_after_seconds(ApiError(429, "", "")) == 0.0
    assert retry.retry_after_seconds(ValueError()) == 0.0


def test_wait_is_at_least_retry_after() -> None:
    wait = retry._WaitHonouringRetryAfter()
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 1
    state.set_exception((ApiError, ApiError(429, "", "", retry_after="2"), None))
    assert all(wait(state) >= 2.0 for _ in range(50))


async def test_call_with_retry_retries_transient_then_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry, "_WaitHonouringRetryAfter", lambda: tenacity.wait_none())
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ApiError(500, "InternalError", "try again")
        return "ok"

    assert await retry.call_with_retry(flaky) == "ok"
    assert calls == 3


async def test_call_with_retry_does_not_retry_a_conflict() -> None:
    calls = 0

    async def conflict() -> str:
        nonlocal calls
        calls += 1
        raise ApiError(409, "Conflict", "stale resourceVersion")

    with pytest.raises(ApiError):
        await retry.call_with_retry(conflict)
    assert calls == 1


async def test_call_with_retry_gives_up_after_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "_WaitHonouringRetryAfter", lambda: tenacity.wait_none())
    calls = 0

    async def down() -> str:
        nonlocal calls
        calls += 1
        raise ApiError(503, "ServiceUnavailable", "down")

    with pytest.raises(ApiError):
        await retry.call_with_retry(down, max_attempts=4)
    assert calls == 4
