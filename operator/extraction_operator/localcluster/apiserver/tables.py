"""Server-side printing: `meta.k8s.io/v1` `Table` responses, as `kubectl get` asks for them.

kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns
the server returns, so a CRD's `additionalPrinterColumns` only show up if the server renders them.
Date columns become ages (`5m3s`), as the real server's CRD table converter does.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from .resources import PrinterColumn, ResourceType

JSON = dict[str, Any]

_INDEX = re.compile(r"^(?P<field>[^\[]*)\[(?P<index>\d+)\]$")

_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _age(timestamp: Any) -> str:
    if not isinstance(timestamp, str):
        return "<unknown>"
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def json_path(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath of printer columns: `.a.b`, `.a[0].b`, `{.a.b}`."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    current = obj
    for part in path.lstrip(".").split("."):
        if not part:
            continue
        match = _INDEX.match(part)
        field, index = (match["field"], int(match["index"])) if match else (part, None)
        if field:
            if not isinstance(current, dict):
                return None
            current = current.get(field)
        if index is not None:
            if not isinstance(current, list) or index >= len(current):
                return None
            current = current[index]
    return current


def _cell(column: PrinterColumn, obj: JSON) -> Any:
    value = json_path(obj, column.json_path)
    if value is None:
        return None
    if column.type == "date":
        return _age(value)
    if isinstance(value, dict | list):
        return str(value)
    return value


def _builtin_columns(resource: ResourceType) -> list[tuple[JSON, Any]]:
    """(column definition, cell function) pairs for built-in kinds, like kubectl's printers."""

    def column(name: str, kind: str = "string", priority: int = 0) -> JSON:
        return {"name": name, "type": kind, "format": "", "description": name, "priority": priority}

    def ready(obj: JSON) -> str:
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        total = len((obj.get("spec") or {}).get("containers") or [])
        return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"

    def completions(obj: JSON) -> str:
        status, spec = obj.get("status") or {}, obj.get("spec") or {}
        return f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}"

    def age(obj: JSON) -> str:
        return _age(obj["metadata"].get("creationTimestamp"))

    key = resource.key
    if key == ("", "pods"):
        return [
            (column("Ready"), ready),
            (column("Status"), lambda o: (o.get("status") or {}).get("phase", "")),
            (column("Restarts", "integer"), lambda o: 0),
            (column("Age"), age),
        ]
    if key == ("batch", "jobs"):
        return [(column("Completions"), completions), (column("Age"), age)]
    if key == ("", "namespaces"):
        return [
            (column("Status"), lambda o: (o.get("status") or {}).get("phase", "")),
            (column("Age"), age),
        ]
    if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return [(column("Created At", "date"), lambda o: o["metadata"].get("creationTimestamp"))]
    return [(column("Age"), age)]


def render_table(
    resource: ResourceType, items: list[JSON], resource_version: str, include: str
) -> JSON:
    """A `Table` of `items` with the resource's columns; `include` is the includeObject mode."""
    if resource.custom:
        columns = [
            (
                {
                    "name": c.name,
                    "type": c.type,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                },
                c,
            )
            for c in resource.printer_columns
        ]
        definitions = [_NAME, *(d for d, _ in columns)]
        if not resource.printer_columns:
            definitions = [_NAME, _builtin_columns(resource)[-1][0]]
    else:
        builtin = _builtin_columns(resource)
        definitions = [_NAME, *(d for d, _ in builtin)]
    rows = []
    for obj in items:
        if resource.custom and resource.printer_columns:
            cells = [obj["metadata"]["name"], *(_cell(c, obj) for _, c in columns)]
        elif resource.custom:
            cells = [obj["metadata"]["name"], _age(obj["metadata"].get("creationTimestamp"))]
        else:
            cells = [obj["metadata"]["name"], *(fn(obj) for _, fn in builtin)]
        row: JSON = {"cells": cells}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
