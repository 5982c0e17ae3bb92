"""RFC 3339 times as Kubernetes writes them (`2026-11-23T03:27:08Z`), parsed tolerantly.

Status is stored with whole seconds, so every time the planner keeps is normalised here first:
a value that round-trips through the API server must compare equal to the one planned, or the
planner would see a change on every reconcile."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def floor_second(moment: datetime) -> datetime:
    """Drop sub-second precision (what the API server would keep of a status time)."""
    return as_utc(moment).replace(microsecond=0)


def ceil_second(moment: datetime) -> datetime:
    """Round up to a whole second: used for retry times, so a wait is never shorter than planned."""
    moment = as_utc(moment)
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def format_time(moment: datetime) -> str:
    """`2026-11-23T03:27:08Z`."""
    return floor_second(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_clock(moment: datetime) -> str:
    """`03:27:08Z`, the short form used in human messages."""
    return floor_second(moment).strftime("%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A datetime from an RFC 3339 string or a datetime; None for anything else (garbage status)."""
    if isinstance(value, datetime):
        return floor_second(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return floor_second(datetime.fromisoformat(text))
    except ValueError:
        return None


def seconds_until(moment: datetime, now: datetime) -> float:
    """Seconds from `now` to `moment`, never negative."""
    return max(0.0, (as_utc(moment) - as_utc(now)).total_seconds())


def add_seconds(moment: datetime, seconds: float) -> datetime:
    """`moment + seconds`, guarded against non-finite values."""
    if not math.isfinite(seconds):
        seconds = 0.0
    return as_utc(moment) + timedelta(seconds=seconds)
