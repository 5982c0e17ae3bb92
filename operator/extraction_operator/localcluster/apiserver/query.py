"""Query parameters read the way the API server's parameter codec reads them.

A real API server decodes `?timeoutSeconds=...&limit=...` into Go's `ListOptions` (and
`gracePeriodSeconds` into `DeleteOptions`) with `strconv.ParseInt`, so `timeoutSeconds=270.0` is a
400 whose message is Go's own parse error, and a boolean is true for anything but "false" and "0".
A client that sends a float where Kubernetes wants an integer would work against a lenient
emulator and fail in production; these helpers make the emulator fail the same way, with the
same message.
"""

from __future__ import annotations

import re
from typing import Any

from . import errors
from .errors import go_quote

_GO_DECIMAL = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def parse_int64(text: str) -> int:
    """`strconv.ParseInt(text, 10, 64)`; a failure raises the 400 the API server answers with."""
    if not _GO_DECIMAL.fullmatch(text):
        raise errors.bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise errors.bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def int64_param(query: Any, name: str) -> int | None:
    """An int64 query parameter: None when absent; present but empty is a parse error, as in Go."""
    text = query.get(name)
    return None if text is None else parse_int64(str(text))


def bool_param(query: Any, name: str) -> bool:
    """A boolean query parameter: absent, "0" and "false" (any case) are false, all else true."""
    text = query.get(name)
    if text is None:
        return False
    return not (text == "0" or text.lower() == "false")


def check_list_options(query: Any) -> None:
    """Reject what decoding `ListOptions` rejects (list, watch and deletecollection requests)."""
    for name in ("timeoutSeconds", "limit"):
        int64_param(query, name)
