"""The PATCH body formats, chosen by Content-Type as a real API server does.

- `application/merge-patch+json`: RFC 7386 (objects merge recursively, `null` deletes a key,
  anything else — lists included — replaces).
- `application/json-patch+json`: RFC 6902 (add, remove, replace, move, copy, test); a failed
  `test` or a path that does not exist is a 422, as on a real server.
- `application/strategic-merge-patch+json`: like a merge patch, except that lists of objects at
  the well-known merge keys of the built-in types a client patches on pods and jobs
  (`containers`, `env`, `volumes`, `conditions`, ...) merge item by item on that key and honour
  `$patch: delete` / `$patch: replace`; other `$`-directives (`$setElementOrder/...`,
  `$retainKeys`, `$deleteFromPrimitiveList/...`) are dropped. Other lists are replaced. This is
  the subset kubectl's client-side apply and the operator produce on built-ins.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

JSON = dict[str, Any]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

# patchMergeKey of the list fields of core/batch types a client is likely to patch.
STRATEGIC_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "tolerations": "key",
}


class PatchError(ApiError):
    """A patch that cannot be applied: 422, naming the operation and the path."""

    def __init__(self, message: str) -> None:
        super().__init__(422, "Invalid", message)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, never mutates its inputs."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: JSON = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """The strategic merge patch subset described in the module docstring."""
    if isinstance(patch, list):
        merge_key = STRATEGIC_MERGE_KEYS.get(field)
        if merge_key and isinstance(target, list) and all(isinstance(i, dict) for i in patch):
            return _merge_list(target, patch, merge_key)
        return [_strip_directives(item) for item in patch]
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    if patch.get("$patch") == "delete":
        return None
    result: JSON = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_list(target: list[Any], patch: list[JSON], merge_key: str) -> list[Any]:
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        key = item.get(merge_key)
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(merge_key) == key
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f'json patch: path "{pointer}" must start with "/"')
    return [_unescape(token) for token in pointer[1:].split("/")]


def _resolve_parent(document: Any, tokens: list[str], pointer: str) -> Any:
    current = document
    for token in tokens[:-1]:
        current = _child(current, token, pointer)
    return current


def _child(container: Any, token: str, pointer: str) -> Any:
    if isinstance(container, dict):
        if token not in container:
            raise PatchError(f'json patch: path "{pointer}" does not exist (missing "{token}")')
        return container[token]
    if isinstance(container, list):
        index = _index(container, token, pointer, allow_end=False)
        return container[index]
    raise PatchError(f'json patch: path "{pointer}" goes through a scalar at "{token}"')


def _index(container: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise PatchError(f'json patch: "{token}" in path "{pointer}" is not a list index')
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f'json patch: index {index} in path "{pointer}" is out of range')
    return index


def _get(document: Any, pointer: str) -> Any:
    current = document
    for token in _split_pointer(pointer):
        current = _child(current, token, pointer)
    return current


def _add(document: Any, pointer: str, value: Any) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return value
    parent = _resolve_parent(document, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, pointer, allow_end=True), value)
    else:
        raise PatchError(f'json patch: cannot add at "{pointer}": parent is not a container')
    return document


def _remove(document: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _split_pointer(pointer)
    if not tokens:
        raise PatchError("json patch: cannot remove the whole document")
    parent = _resolve_parent(document, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'json patch: cannot remove "{pointer}": it does not exist')
        return document, parent.pop(last)
    if isinstance(parent, list):
        return document, parent.pop(_index(parent, last, pointer, allow_end=False))
    raise PatchError(f'json patch: cannot remove "{pointer}": parent is not a container')


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch; returns a new document, never mutates its input."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "json patch: the body must be a list of operations")
    document = copy.deepcopy(target)
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise ApiError(
                400,
                "BadRequest",
                f"json patch: operation {number} must be an object with 'op' and 'path'",
            )
        op, path = operation["op"], str(operation["path"])
        if op in ("add", "replace", "test") and "value" not in operation:
            raise ApiError(
                400, "BadRequest", f"json patch: operation {number} ({op}) needs 'value'"
            )
        if op == "add":
            document = _add(document, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            document, _ = _remove(document, path)
        elif op == "replace":
            document, _ = _remove(document, path)
            document = _add(document, path, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = str(operation.get("from", ""))
            if op == "move":
                document, value = _remove(document, source)
            else:
                value = copy.deepcopy(_get(document, source))
            document = _add(document, path, value)
        elif op == "test":
            actual = _get(document, path)
            if actual != operation["value"]:
                raise PatchError(
                    f'json patch: test operation failed: "{path}" is {actual!r}, '
                    f"not {operation['value']!r}"
                )
        else:
            raise ApiError(400, "BadRequest", f'json patch: unknown operation "{op}"')
    return document
