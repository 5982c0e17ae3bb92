"""Human text that goes into status: secrets scrubbed, size bounded, UTF-8 kept intact.

A stage's termination message is whatever the program printed last, which is exactly where a
traceback shows an API key or a connection string. Status is readable by anyone who can `get` the
run, so known secret shapes are masked before anything is stored or put in an Event."""

from __future__ import annotations

import re

from extraction_operator.api.constants import MAX_MESSAGE_BYTES

REDACTED = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers: `Bearer abc`, `Basic abc`.
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{4,}"), rf"\1 {REDACTED}"),
    # key=value / key: value pairs whose key names a secret (password=..., api_key: ...).
    (
        re.compile(
            r"(?i)\b([A-Za-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey"
            r"|access[_-]?key|private[_-]?key|credentials?)[A-Za-z0-9_-]*)"
            r"(\"?\s*[:=]\s*\"?)([^\s\"',;&]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
    # Provider keys: OpenAI/Anthropic style `sk-...`, GitHub, Slack, Google.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), f"sk-{REDACTED}"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{16,}"), REDACTED),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{8,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),
    # AWS access key ids (their secret keys are caught by the key=value rule above).
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    # Credentials inside URLs: scheme://user:password@host.
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), rf"\1:{REDACTED}@"),
)


def scrub(text: str) -> str:
    """Mask secret-looking tokens."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def truncate_utf8(text: str, max_bytes: int) -> str:
    """At most `max_bytes` of UTF-8, cut on a character boundary, marked with `…` when cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    ellipsis = "…"
    room = max(0, max_bytes - len(ellipsis.encode("utf-8")))
    return encoded[:room].decode("utf-8", errors="ignore") + ellipsis


def clean_message(text: str | None, max_bytes: int = MAX_MESSAGE_BYTES) -> str | None:
    """Scrub, trim surrounding whitespace and bound a message; None for nothing to say.

    Long messages keep their *end*: a termination message or log tail says what went wrong last."""
    if text is None:
        return None
    cleaned = scrub(str(text)).strip()
    if not cleaned:
        return None
    encoded = cleaned.encode("utf-8")
    if len(encoded) <= max_bytes:
        return cleaned
    marker = "…"
    room = max(0, max_bytes - len(marker.encode("utf-8")))
    tail = encoded[len(encoded) - room :].decode("utf-8", errors="ignore")
    return marker + tail
