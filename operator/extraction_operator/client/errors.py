"""One error type for the CLI, and the API server's own words out of a failed request."""

from __future__ import annotations

import json
from typing import Any

EXIT_FAILED = 1


class CliError(Exception):
    """A failure the command reports as one line on stderr (no traceback), exiting `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED, *, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status  # the HTTP status of the API error behind it, if any


def api_status(error: Any) -> int:
    """The HTTP status of a `kubernetes` ApiException (0 when it carries none)."""
    status = getattr(error, "status", None)
    return status if isinstance(status, int) else 0


def api_message(error: Any) -> str:
    """The `message` of the Status the API server sent, else its reason, on one line."""
    body = getattr(error, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    message = ""
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            message = body
        else:
            if isinstance(status, dict):
                message = str(status.get("message") or "")
            message = message or body
    if not message:
        message = str(getattr(error, "reason", "") or type(error).__name__)
    return " ".join(message.split())


def describe_api_error(error: Any) -> str:
    """`pods "x" not found (404 Not Found)`."""
    status = api_status(error)
    reason = " ".join(str(getattr(error, "reason", "") or "").split())
    message = api_message(error)
    if not status:
        return message
    return f"{message} ({status} {reason})" if reason else f"{message} ({status})"
