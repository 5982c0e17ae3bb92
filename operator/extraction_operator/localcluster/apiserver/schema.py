"""Structural-schema handling of custom resources: defaulting, pruning and validation.

A real API server applies a CRD's `openAPIV3Schema` on every write: it drops fields the schema
does not declare (pruning), fills `default`s of absent fields, and rejects values that break the
schema with a 422 naming each field. Operators depend on all three (a defaulted `spec.retry.limit`,
a rejected `spec: "oops"`), so the emulator does the same for the keywords our CRD uses: type,
properties, additionalProperties, items, required, enum, nullable, minimum/maximum (and exclusive),
min/maxLength, pattern, min/maxItems, min/maxProperties, x-kubernetes-int-or-string,
x-kubernetes-preserve-unknown-fields and list-type map key uniqueness. CEL rules
(`x-kubernetes-validations`) are the job of `cel`.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

JSON = dict[str, Any]

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def prune_and_default(value: Any, schema: JSON, *, root: bool = False) -> Any:
    """A copy of `value` with undeclared fields dropped and absent defaulted fields filled."""
    if isinstance(value, dict) and _is_object_schema(schema):
        return _object(value, schema, root)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(item, schema["items"]) for item in value]
    return copy.deepcopy(value)


def _is_object_schema(schema: JSON) -> bool:
    return schema.get("type") == "object" or "properties" in schema


def _object(value: JSON, schema: JSON, root: bool) -> JSON:
    properties: JSON = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    result: JSON = {}
    for key, item in value.items():
        if root and key in _ROOT_KEEP:
            result[key] = copy.deepcopy(item)
        elif key in properties:
            result[key] = prune_and_default(item, properties[key])
        elif isinstance(additional, dict):
            result[key] = prune_and_default(item, additional)
        elif additional is True or preserve:
            result[key] = copy.deepcopy(item)
    for key, sub in properties.items():
        if "default" in sub and (
            key not in result or (result[key] is None and not sub.get("nullable"))
        ):
            result[key] = prune_and_default(copy.deepcopy(sub["default"]), sub)
    return result


def _type_ok(value: Any, schema: JSON) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)
    expected = schema.get("type")
    if expected is None:
        return True
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def validate(value: Any, schema: JSON, path: str = "") -> list[tuple[str, str]]:
    """Every (field path, problem) where `value` breaks `schema`; empty when it conforms."""
    errors: list[tuple[str, str]] = []
    _validate(value, schema, path, errors)
    return errors


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + "..."


def _validate(value: Any, schema: JSON, path: str, errors: list[tuple[str, str]]) -> None:
    where = path or "<root>"
    if value is None:
        if not schema.get("nullable"):
            errors.append(
                (
                    where,
                    f"Invalid value: null: {where} in body must be of type "
                    f"{schema.get('type', 'object')}",
                )
            )
        return
    if not _type_ok(value, schema):
        errors.append(
            (
                where,
                f"Invalid value: {_shown(value)}: {where} in body must be of type "
                f"{schema.get('type')}",
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_shown(v) for v in schema["enum"])
        errors.append((where, f"Unsupported value: {_shown(value)}: supported values: {allowed}"))
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        _validate_number(value, schema, where, errors)
    elif isinstance(value, str):
        _validate_string(value, schema, where, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errors)


def _validate_number(value: float, schema: JSON, where: str, errors: list[tuple[str, str]]) -> None:
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            errors.append(
                (where, f"Invalid value: {value}: {where} in body should be greater than {low}")
            )
        elif value < low:
            errors.append(
                (
                    where,
                    f"Invalid value: {value}: {where} in body should be greater "
                    f"than or equal to {low}",
                )
            )
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= high:
            errors.append(
                (where, f"Invalid value: {value}: {where} in body should be less than {high}")
            )
        elif value > high:
            errors.append(
                (
                    where,
                    f"Invalid value: {value}: {where} in body should be less "
                    f"than or equal to {high}",
                )
            )


def _validate_string(value: str, schema: JSON, where: str, errors: list[tuple[str, str]]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append((where, f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            (
                where,
                f"Invalid value: {_shown(value)}: {where} in body should be at "
                f"least {schema['minLength']} chars long",
            )
        )
    if "pattern" in schema:
        pattern = _compiled(str(schema["pattern"]))
        if pattern is not None and not pattern.search(value):
            errors.append(
                (
                    where,
                    f"Invalid value: {_shown(value)}: {where} in body should match "
                    f"'{schema['pattern']}'",
                )
            )


def _validate_array(
    value: list[Any], schema: JSON, path: str, errors: list[tuple[str, str]]
) -> None:
    where = path or "<root>"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(
            (where, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(
            (
                where,
                f"Invalid value: {len(value)}: {where} in body should have at "
                f"least {schema['minItems']} items",
            )
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", errors)
    if schema.get("x-kubernetes-list-type") == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            identity = repr([item.get(k) for k in keys])
            if identity in seen:
                errors.append(
                    (
                        f"{path}[{index}]",
                        f"Duplicate value: {_shown(item.get(keys[0]) if keys else item)}",
                    )
                )
            seen.add(identity)


def _validate_object(value: JSON, schema: JSON, path: str, errors: list[tuple[str, str]]) -> None:
    where = path or "<root>"
    prefix = f"{path}." if path else ""
    for key in schema.get("required") or []:
        if key not in value:
            errors.append((f"{prefix}{key}", "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(
            (where, f"Too many: {len(value)}: must have at most {schema['maxProperties']} items")
        )
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(
            (
                where,
                f"Invalid value: {len(value)}: {where} in body should have at "
                f"least {schema['minProperties']} properties",
            )
        )
    properties: JSON = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if not path and key in _ROOT_KEEP:
            continue
        if key in properties:
            _validate(item, properties[key], f"{prefix}{key}", errors)
        elif isinstance(additional, dict):
            _validate(item, additional, f"{prefix}{key}", errors)


def unknown_fields(value: Any, schema: JSON, path: str = "", *, root: bool = False) -> list[str]:
    """Paths of fields pruning would drop (what `fieldValidation=Strict` rejects)."""
    found: list[str] = []
    if isinstance(value, dict) and _is_object_schema(schema):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return found
        properties: JSON = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if root and key in _ROOT_KEEP:
                continue
            if key in properties:
                found += unknown_fields(item, properties[key], where)
            elif isinstance(additional, dict):
                found += unknown_fields(item, additional, where)
            elif additional is not True:
                found.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found
