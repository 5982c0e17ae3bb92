"""API errors that render as Kubernetes `Status` objects.

Clients (the `kubernetes` package, kopf, kubectl) branch on `reason` and `code` of a `Status`
body, not on the HTTP status alone, so every failure the emulator reports carries both, exactly
as a real API server spells them.
"""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]


def go_quote(text: str) -> str:
    """Go's `%q` (`strconv.Quote`) for the printable text it quotes here (JSON escaping agrees)."""
    return json.dumps(text, ensure_ascii=False)


def go_value(value: Any) -> str:
    """Go's `%v` of a decoded JSON value: `map[a:1 b:[x <nil>]]`, keys sorted."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the API server's JSON decoding keeps integral numbers as int64
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    return str(value)


class ApiError(Exception):
    """A failed API call: HTTP code, Kubernetes reason, message and optional details."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> JSON:
        """The `Status` object a real API server returns for this error."""
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, plural: str) -> JSON:
    details: JSON = {"group": group, "kind": plural}
    if name is not None:
        details["name"] = name
    return details


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(group, plural)} "{name}" not found',
        _details(name, group, plural),
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(group, plural)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(group: str, plural: str, name: str, why: str | None = None) -> ApiError:
    reason = why or (
        "the object has been modified; "
        "please apply your changes to the latest version and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {reason}',
        _details(name, group, plural),
    )


_CAUSE_REASONS = (
    ("Required value", "FieldValueRequired"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Forbidden", "FieldValueForbidden"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Not found", "FieldValueNotFound"),
)


def _cause_reason(problem: str) -> str:
    """The cause reason Go's field.Error type implies, read off the problem's wording."""
    return next(
        (r for prefix, r in _CAUSE_REASONS if problem.startswith(prefix)), "FieldValueInvalid"
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with one cause per (field path, problem), as field validation reports it:
    several problems are listed in brackets (Go's aggregate error), and a core kind has no group
    in the details."""
    texts = list(dict.fromkeys(f"{field}: {problem}" for field, problem in causes))
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    details: JSON = {"name": name, "group": group, "kind": kind}
    if not group:
        del details["group"]
    details["causes"] = [
        {"reason": _cause_reason(problem), "message": problem, "field": field}
        for field, problem in causes
    ]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format: {content_type or '(none)'}; "
        "accepted media types include: application/json-patch+json, "
        "application/merge-patch+json, application/strategic-merge-patch+json, "
        "application/apply-patch+yaml",
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def undecodable_patch(value: Any, strategic: bool, problem: str) -> ApiError:
    """A patch whose result does not decode into the kind's Go type: 422 on the field `patch`.

    The API server shows the patched object as JSON for JSON and merge patches, and the patch
    itself as a Go map for a strategic merge patch; there are no name, group or kind details.
    """
    shown = go_value(value) if strategic else json.dumps(value, separators=(",", ":"))
    detail = f"Invalid value: {go_quote(shown)}: {problem}"
    return ApiError(
        422,
        "Invalid",
        f' "" is invalid: patch: {detail}',
        {"causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "patch"}]},
    )


def _summary(raw: bytes) -> str:
    """Go's `summarizeData`: the first 30 bytes, as text for an object and as hex otherwise."""
    if not raw:
        return "<empty>"
    head = raw[:30]
    text = head.decode("utf-8", "replace") if raw[:1] == b"{" else head.hex()
    return f"{text} ..." if len(raw) > 30 else text


def unrecognized(kind: str, raw: bytes, cause: str) -> ApiError:
    """A body the decoder could not even type (400), summarised as the API server does."""
    return bad_request(
        f"the object provided is unrecognized (must be of type {kind}): {cause} ({_summary(raw)})"
    )


def missing_kind(kind: str, raw: bytes) -> ApiError:
    """A custom resource body without `kind`: nothing defaults it, unlike a built-in's."""
    text = raw.decode("utf-8", "replace")
    return unrecognized(kind, raw, f"Object 'Kind' is missing in '{text}'")


def not_an_object(kind: str, raw: bytes, json_type: str) -> ApiError:
    """A body that is JSON but not an object: Go fails to read its apiVersion and kind."""
    struct = (
        r'struct { APIVersion string "json:\"apiVersion,omitempty\""; '
        r'Kind string "json:\"kind,omitempty\"" }'
    )
    cause = (
        "couldn't get version/kind; json parse error: json: cannot unmarshal "
        f"{json_type} into Go value of type {struct}"
    )
    return unrecognized(kind, raw, cause)


def deleted(group: str, plural: str, obj: JSON) -> JSON:
    """The `Status` a real API server answers a delete with once the object is gone, for the
    kinds whose registry does not return the deleted object itself."""
    meta = obj.get("metadata") or {}
    details: JSON = {"name": meta.get("name", "")}
    if group:
        details["group"] = group
    details.update({"kind": plural, "uid": meta.get("uid", "")})
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
