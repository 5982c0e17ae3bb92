"""Label and field selectors, parsed as the API server parses `labelSelector` / `fieldSelector`.

Label selectors support equality (`k=v`, `k==v`, `k!=v`), sets (`k in (a,b)`, `k notin (a,b)`)
and existence (`k`, `!k`). Field selectors support `=`, `==` and `!=` on the fields a resource
allows (every resource allows `metadata.name` and `metadata.namespace`). A malformed selector is
a 400 naming the selector and the problem, not a silently empty list.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .errors import ApiError, bad_request

JSON = dict[str, Any]

_KEY = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQ = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too, as on a real server.
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_key(key: str, selector: str) -> None:
    if not _KEY.match(key):
        raise bad_request(
            f'unable to parse requirement: invalid label key "{key}" in labelSelector "{selector}"'
        )


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A parsed `labelSelector`; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text or not text.strip():
            return cls()
        requirements = []
        for clause in _split_top_level(text):
            if not clause.strip():
                raise bad_request(f'labelSelector "{text}": empty requirement between commas')
            requirements.append(cls._parse_clause(clause, text))
        return cls(tuple(requirements))

    @staticmethod
    def _parse_clause(clause: str, text: str) -> Requirement:
        if match := _SET.match(clause):
            key = match["key"]
            _check_key(key, text)
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            if not values:
                raise bad_request(f'labelSelector "{text}": "{clause.strip()}" needs values')
            return Requirement(key, match["op"], values)
        if match := _EQ.match(clause):
            key = match["key"]
            _check_key(key, text)
            op = "!=" if match["op"] == "!=" else "="
            return Requirement(key, op, frozenset({match["value"]}))
        if match := _EXISTS.match(clause):
            key = match["key"]
            _check_key(key, text)
            return Requirement(key, "!exists" if match["neg"] else "exists")
        raise bad_request(
            f'unable to parse requirement "{clause.strip()}" in labelSelector "{text}": '
            "use key=value, key!=value, key in (a,b), key notin (a,b), key or !key"
        )

    def matches(self, obj: JSON) -> bool:
        if not self.requirements:
            return True
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


def _field_value(obj: JSON, path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    """A parsed `fieldSelector`: (path, equal?, value) clauses, all of which must hold."""

    clauses: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(
        cls, text: str | None, allowed: tuple[str, ...], any_field: bool, resource: str
    ) -> FieldSelector:
        if not text or not text.strip():
            return cls()
        clauses = []
        for clause in text.split(","):
            if "!=" in clause:
                path, value = clause.split("!=", 1)
                equal = False
            elif "==" in clause:
                path, value = clause.split("==", 1)
                equal = True
            elif "=" in clause:
                path, value = clause.split("=", 1)
                equal = True
            else:
                raise bad_request(
                    f'invalid fieldSelector "{text}": "{clause}" is not field=value or field!=value'
                )
            path = path.strip()
            if path not in ("metadata.name", "metadata.namespace", *allowed) and not any_field:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"field label not supported: {path} (resource {resource} supports "
                    f"metadata.name, metadata.namespace{''.join(', ' + a for a in allowed)})",
                )
            clauses.append((path, equal, value.strip()))
        return cls(tuple(clauses))

    def matches(self, obj: JSON) -> bool:
        return all(
            (_field_value(obj, path) == value) == equal for path, equal, value in self.clauses
        )

    def only_name(self) -> str | None:
        """The single name this selector pins (`metadata.name=x`), for a fast lookup."""
        for path, equal, value in self.clauses:
            if path == "metadata.name" and equal:
                return value
        return None
