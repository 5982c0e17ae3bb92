"""Go's `time.Parse` for the two layouts Kubernetes timestamps use, with Go's error messages.

`metav1.Time` fields (`creationTimestamp`, `lastTransitionTime`, ...) are parsed with RFC 3339,
which takes any number of fractional digits or none; `metav1.MicroTime` fields (an Event's
`eventTime`, a Lease's `renewTime`) with RFC 3339 and exactly six fractional digits, so
"2026-01-01T00:00:00Z" is not a MicroTime. The API server fails the whole request with the parse
error's text, so this is a port of the parser's walk over the layout for the elements those two
layouts have, reporting what Go reports: which part of the value could not be parsed as which
part of the layout, or which field is out of range.
"""

from __future__ import annotations

from .errors import go_quote

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"

# Each layout as Go's `nextStdChunk` splits it: literal prefixes and standard elements.
_CHUNKS = {
    RFC3339: ("2006", "-", "01", "-", "02", "T", "15", ":", "04", ":", "05", "Z07:00"),
    RFC3339_MICRO: (
        "2006", "-", "01", "-", "02", "T", "15", ":", "04", ":", "05", ".000000", "Z07:00",
    ),
}  # fmt: skip
_RANGES = {"01": ("month", 1, 12), "15": ("hour", 0, 23), "04": ("minute", 0, 59),
           "05": ("second", 0, 59)}  # fmt: skip


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Bad(Exception):
    """The value cannot be parsed as the current layout element."""


def _digit(value: str, index: int) -> bool:
    return len(value) > index and value[index] in "0123456789"


def _getnum(value: str, fixed: bool) -> tuple[int, str]:
    """Go's `getnum`: one or two digits, exactly two when `fixed`."""
    if not _digit(value, 0):
        raise _Bad
    if not _digit(value, 1):
        if fixed:
            raise _Bad
        return int(value[0]), value[1:]
    return int(value[:2]), value[2:]


def _zone(value: str) -> str:
    """`Z07:00`: "Z", or a sign, two hour digits, ":" and two minute digits."""
    if value.startswith("Z"):
        return value[1:]
    if len(value) < 6 or value[3] != ":" or value[0] not in "+-":
        raise _Bad
    _getnum(value[1:3], True)
    _getnum(value[4:6], True)
    return value[6:]


def _fraction(value: str, digits: int) -> str:
    """A "." or "," and exactly `digits` digits."""
    if len(value) < 1 + digits or value[0] not in ".,":
        raise _Bad
    if not value[1 : 1 + digits].isascii() or not value[1 : 1 + digits].isdigit():
        raise _Bad
    return value[1 + digits :]


def parse_error(layout: str, value: str) -> str | None:
    """The error `time.Parse(layout, value)` returns, or None when Go parses the value."""
    rest = value
    fields: dict[str, int] = {}

    def failure(element: str, at: str, message: str = "") -> str:
        if message:
            return f"parsing time {go_quote(value)}{message}"
        return (
            f"parsing time {go_quote(value)} as {go_quote(layout)}: cannot parse {go_quote(at)} "
            f"as {go_quote(element)}"
        )

    for element in _CHUNKS[layout]:
        hold = rest
        try:
            if element in ("-", "T", ":"):
                if not rest.startswith(element):
                    return failure(element, rest)
                rest = rest[1:]
            elif element == "2006":
                if len(rest) < 4 or not (rest[:4].isascii() and rest[:4].isdigit()):
                    raise _Bad
                fields[element], rest = int(rest[:4]), rest[4:]
            elif element in ("01", "02", "15", "04", "05"):
                fields[element], rest = _getnum(rest, element != "15")
                if (
                    element == "05"
                    and layout == RFC3339
                    and rest[:1] in (".", ",")
                    and _digit(rest, 1)
                ):
                    count = 1  # RFC 3339 takes a fraction its layout does not show
                    while _digit(rest, count + 1):
                        count += 1
                    rest = _fraction(rest, count)
            elif element == ".000000":
                rest = _fraction(rest, 6)
            else:
                rest = _zone(rest)
        except _Bad:
            return failure(element, hold)
        if element in _RANGES:
            name, low, high = _RANGES[element]
            if not low <= fields[element] <= high:
                return failure(element, rest, f": {name} out of range")
    if rest:
        return failure("", rest, f": extra text: {go_quote(rest)}")
    year, month, day = fields["2006"], fields["01"], fields["02"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = 29 if month == 2 and leap else _DAYS[month - 1]
    if not 1 <= day <= days:
        return failure("", rest, ": day out of range")
    return None
