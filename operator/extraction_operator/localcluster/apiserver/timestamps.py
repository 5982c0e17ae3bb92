"""Timestamp fields of built-in kinds, checked the way decoding into their Go types checks them.

A JSON schema would take any string for an Event's `eventTime`; the API server decodes the body
into Go structs first, and `metav1.MicroTime` takes only RFC 3339 with six fractional digits
(`metav1.Time` any RFC 3339). A bad value fails the whole request before validation: a create or
update is a 400 naming the kind, a patch a 422 on the field `patch`. Clients that format their own
timestamps (the Python client drops the fraction of a whole-second `datetime`) meet this only on a
real cluster unless the emulator checks it too.

A value that decodes is stored as Go encodes it again: in UTC with "Z", a `metav1.Time` in whole
seconds and a `metav1.MicroTime` with six digits, so "2026-01-01T00:00:00.5+01:00" reads back as
"2025-12-31T23:00:00Z".

The table lists, per resource, each timestamp field as a dotted path (`[]` for list items) with
its layout and the Go struct that holds it, which Go names when the value is not even a string.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any

from .gotime import RFC3339, RFC3339_MICRO, parse_error

JSON = dict[str, Any]
Field = tuple[str, str, str]  # (path, layout, Go struct holding the field)

_CONDITION_TIMES = ("lastProbeTime", "lastTransitionTime")
_EVERY_KIND: tuple[Field, ...] = (
    ("metadata.creationTimestamp", RFC3339, "ObjectMeta"),
    ("metadata.deletionTimestamp", RFC3339, "ObjectMeta"),
    ("metadata.managedFields[].time", RFC3339, "ManagedFieldsEntry"),
)


def _conditions(struct: str, times: tuple[str, ...] = _CONDITION_TIMES) -> tuple[Field, ...]:
    return tuple((f"status.conditions[].{name}", RFC3339, struct) for name in times)


def _container_states() -> tuple[Field, ...]:
    fields: list[Field] = []
    for statuses in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for state in ("state", "lastState"):
            base = f"status.{statuses}[].{state}"
            fields.append((f"{base}.running.startedAt", RFC3339, "ContainerStateRunning"))
            fields.append((f"{base}.terminated.startedAt", RFC3339, "ContainerStateTerminated"))
            fields.append((f"{base}.terminated.finishedAt", RFC3339, "ContainerStateTerminated"))
    return tuple(fields)


FIELDS: dict[tuple[str, str], tuple[Field, ...]] = {
    ("", "events"): (
        ("firstTimestamp", RFC3339, "Event"),
        ("lastTimestamp", RFC3339, "Event"),
        ("eventTime", RFC3339_MICRO, "Event"),
        ("series.lastObservedTime", RFC3339_MICRO, "EventSeries"),
    ),
    ("events.k8s.io", "events"): (
        ("eventTime", RFC3339_MICRO, "Event"),
        ("series.lastObservedTime", RFC3339_MICRO, "EventSeries"),
        ("deprecatedFirstTimestamp", RFC3339, "Event"),
        ("deprecatedLastTimestamp", RFC3339, "Event"),
    ),
    ("coordination.k8s.io", "leases"): (
        ("spec.acquireTime", RFC3339_MICRO, "LeaseSpec"),
        ("spec.renewTime", RFC3339_MICRO, "LeaseSpec"),
    ),
    ("", "pods"): (
        ("status.startTime", RFC3339, "PodStatus"),
        *_conditions("PodCondition"),
        *_container_states(),
    ),
    ("batch", "jobs"): (
        ("status.startTime", RFC3339, "JobStatus"),
        ("status.completionTime", RFC3339, "JobStatus"),
        *_conditions("JobCondition"),
    ),
    ("", "namespaces"): _conditions("NamespaceCondition", ("lastTransitionTime",)),
    ("", "persistentvolumeclaims"): _conditions("PersistentVolumeClaimCondition"),
    ("apiextensions.k8s.io", "customresourcedefinitions"): _conditions(
        "CustomResourceDefinitionCondition", ("lastTransitionTime",)
    ),
}

_JSON_TYPES = ((bool, "bool"), (int, "number"), (float, "number"), (dict, "object"),
               (list, "array"))  # fmt: skip


def _json_type(value: Any) -> str:
    return next(name for kind, name in _JSON_TYPES if isinstance(value, kind))


def _problem(value: Any, path: str, layout: str, struct: str) -> str | None:
    if value is None:
        return None  # null is the zero time
    if not isinstance(value, str):
        field = path.replace("[]", "")
        return (
            f"json: cannot unmarshal {_json_type(value)} into Go struct field {struct}.{field} "
            "of type string"
        )
    return parse_error(layout, value)


def _walk(
    value: Any, path: str, wanted: dict[str, tuple[str, str]], prefixes: frozenset[str]
) -> str | None:
    """The first problem in document order, as Go's decoder meets them; None when there is none."""
    if path in wanted:
        layout, struct = wanted[path]
        return _problem(value, path, layout, struct)
    if path and path not in prefixes:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _walk(item, f"{path}.{key}" if path else str(key), wanted, prefixes)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _walk(item, f"{path}[]", wanted, prefixes)
            if found:
                return found
    return None


@lru_cache(maxsize=64)
def _plan(resource_key: tuple[str, str]) -> tuple[dict[str, tuple[str, str]], frozenset[str]]:
    """The timestamp fields of a resource and every path leading to one (the walk prunes there)."""
    fields = (*_EVERY_KIND, *FIELDS.get(resource_key, ()))
    wanted = {path: (layout, struct) for path, layout, struct in fields}
    prefixes = set()
    for path in wanted:
        parts = path.replace("[]", ".[]").split(".")
        for end in range(1, len(parts)):
            prefixes.add(".".join(parts[:end]).replace(".[]", "[]"))
    return wanted, frozenset(prefixes)


def decode_problem(resource_key: tuple[str, str], obj: JSON) -> str | None:
    """Why decoding `obj` into the Go type of `resource_key` fails, or None when it does not."""
    wanted, prefixes = _plan(resource_key)
    return _walk(obj, "", wanted, prefixes)


def _canonical(value: str, layout: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(value).astimezone(datetime.UTC)
    except ValueError:
        return value  # a form Go takes and Python does not (a one-digit hour): kept as sent
    if layout == RFC3339_MICRO:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rewrite(value: Any, parts: list[str], layout: str) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if head == "[]":
        for item in value if isinstance(value, list) else ():
            _rewrite(item, rest, layout)
    elif isinstance(value, dict) and head in value:
        if rest:
            _rewrite(value[head], rest, layout)
        elif isinstance(value[head], str):
            value[head] = _canonical(value[head], layout)


def normalize(resource_key: tuple[str, str], obj: JSON) -> None:
    """Rewrite, in place, every timestamp of a decodable `obj` the way Go encodes it back."""
    wanted, _ = _plan(resource_key)
    for path, (layout, _struct) in wanted.items():
        _rewrite(obj, path.replace("[]", ".[]").split("."), layout)
