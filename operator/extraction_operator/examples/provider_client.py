"""The mentions stage's client for the (fake) LLM provider: one POST per chunk, stdlib only.

The client does no retries of its own, on purpose: a retry loop inside a circuit breaker hides
failures from it and multiplies the calls that reach a failing provider (docs/circuit-breakers.md,
"Combine with provider SDK retries"). Retries belong to the operator, which re-runs the shard with
backoff. Errors are raised as exceptions the breaker's default classifier understands: a
`ProviderHTTPError` carries `status_code` (5xx and 529 count as failures, other 4xx do not), and
an unreachable or silent provider raises `ProviderUnavailable`, a `ConnectionError`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .records import Chunk, Mention
from .runtime import StageInputError

ENV_PROVIDER_URL = "LLM_PROVIDER_URL"
ENV_PROVIDER_TIMEOUT = "LLM_PROVIDER_TIMEOUT_SECONDS"
EXTRACT_PATH = "/v1/extract"
RUN_HEADER = "X-Extraction-Run"
# Short: a hung call must end well before the breaker's probe lease (probeTimeoutSeconds).
DEFAULT_TIMEOUT_SECONDS = 5.0


class ProviderHTTPError(Exception):
    """The provider answered with an error status; `status_code` tells the breaker whether it
    counts (5xx, 529, a long 429) or not (other 4xx: the request was wrong, not the provider)."""

    def __init__(self, status_code: int, detail: str) -> None:
        self.status_code = status_code
        super().__init__(f"provider answered HTTP {status_code}: {detail}")


class ProviderUnavailable(ConnectionError):
    """The provider could not be reached or did not answer in time."""


class ProviderReplyError(Exception):
    """The provider answered 200 with something that is not a list of mentions."""


def extract_mentions(
    base_url: str, chunk: Chunk, *, run: str = "", timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> list[Mention]:
    """Ask the provider at `base_url` for the mentions of one chunk."""
    body = json.dumps({"chunk": chunk.to_json()}).encode("utf-8")
    request = urllib.request.Request(
        base_url.rstrip("/") + EXTRACT_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", RUN_HEADER: run},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply: Any = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace")[:200]
        raise ProviderHTTPError(error.code, detail or str(error.reason)) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ProviderUnavailable(f"{base_url}: {reason}") from None
    except ValueError as error:
        raise ProviderReplyError(f"the provider's reply is not JSON: {error}") from None
    mentions = reply.get("mentions") if isinstance(reply, dict) else None
    if not isinstance(mentions, list):
        raise ProviderReplyError("the provider's reply has no 'mentions' list")
    try:
        return [
            Mention.from_json(item, f"provider reply for {chunk.id}[{index}]")
            for index, item in enumerate(mentions)
        ]
    except StageInputError as error:  # the provider's fault, not the stage's input: retryable
        raise ProviderReplyError(str(error)) from None
