"""CRD validation rules (`x-kubernetes-validations`, CEL), evaluated with cel-python when present.

A real API server rejects an ExtractionRun whose `dependsOn` names a missing stage, or an update
that changes `spec.stages`, with a 422 naming the field and the rule's message. The emulator does
the same when the `celpy` package (PyPI `cel-python`) is installed, and skips the rules otherwise
(`available()` says which). As on a real server (validation ratcheting), a rule is only evaluated
where the value changed on an update, and a transition rule (one that mentions `oldSelf`) only
where an old value exists: at the same key of an object, or the same map key of a
`x-kubernetes-list-type: map` list.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

celpy: Any
try:  # optional: cel-python is a test dependency, not a runtime one
    celpy = importlib.import_module("celpy")
except ImportError:  # pragma: no cover - exercised only where cel-python is missing
    celpy = None

JSON = dict[str, Any]
_MISSING = object()


def available() -> bool:
    return celpy is not None


@lru_cache(maxsize=128)
def _program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _check_rules(value: Any, old: Any, schema: JSON, path: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = str(rule.get("rule", ""))
        transition = "oldSelf" in text
        if transition and old is _MISSING:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        field = path + str(rule.get("fieldPath", ""))
        try:
            passed = bool(_program(text).evaluate(activation))
        except Exception as error:  # a CEL runtime or compile error fails the rule, as on a server
            problems.append((field, f'Invalid value: "{_kind(value)}": rule {text!r}: {error}'))
            continue
        if passed:
            continue
        message = str(rule.get("message") or f"failed rule: {text}")
        if rule.get("reason") == "FieldValueRequired":
            problems.append((field, f"Required value: {message}"))
        else:
            problems.append((field, f'Invalid value: "{_kind(value)}": {message}'))
    return problems


def validate(
    value: Any, schema: JSON, old: Any = _MISSING, path: str = ""
) -> list[tuple[str, str]]:
    """(field, problem) for every failed rule in `value` (compared with `old` on updates)."""
    if celpy is None or value is None:
        return []
    if old is not _MISSING and old == value:
        return []  # ratcheting: an unchanged value is not re-validated
    problems = _check_rules(value, old, schema, path) if path else []
    prefix = f"{path}." if path else ""
    if isinstance(value, dict):
        properties: JSON = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            sub = properties.get(key, additional if isinstance(additional, dict) else None)
            if isinstance(sub, dict):
                problems += validate(item, sub, old_map.get(key, _MISSING), f"{prefix}{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        old_items: dict[str, Any] = {}
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            old_items = {repr([o.get(k) for k in keys]): o for o in old if isinstance(o, dict)}
        for index, item in enumerate(value):
            previous = (
                old_items.get(repr([item.get(k) for k in keys]), _MISSING)
                if isinstance(item, dict) and old_items
                else _MISSING
            )
            problems += validate(item, schema["items"], previous, f"{path}[{index}]")
    return problems


def validate_object(obj: JSON, schema: JSON, old: JSON | None) -> list[tuple[str, str]]:
    """Rules of a whole custom resource (root rules are not used by our CRDs and skipped)."""
    problems: list[tuple[str, str]] = []
    properties: JSON = schema.get("properties") or {}
    for key in ("spec", "status"):
        if key in obj and isinstance(properties.get(key), dict):
            previous = old.get(key, _MISSING) if old is not None else _MISSING
            problems += validate(obj[key], properties[key], previous, key)
    return problems
