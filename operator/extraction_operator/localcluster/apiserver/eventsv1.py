"""core/v1 Events and events.k8s.io/v1 Events are one resource seen through two APIs.

A real API server stores every Event once and converts it to the version a client asks for: an
Event posted through core/v1 (as the operator and kopf post theirs) is listed by
`kubectl events` through events.k8s.io/v1, with `involvedObject` read as `regarding`, `message` as
`note` and so on. The emulator stores each Event in the shape it was written in and converts it
when it is read through the other API, with the field mapping of Kubernetes' own conversion.

A new Event is validated as the API server validates it: an Event with an `eventTime` (a
"new-style" one, whichever API posts it) names its reporting controller, instance and action, one
without names the namespace of its object; events.k8s.io/v1 also insists on an `eventTime`, a
type of Normal or Warning, and none of the deprecated core fields.
"""

from __future__ import annotations

from typing import Any

from .metadata import qualified_name_problems

JSON = dict[str, Any]

CORE, EVENTS_V1 = "v1", "events.k8s.io/v1"

# events.k8s.io/v1 field -> core/v1 field; the other fields are the same in both.
_V1_TO_CORE = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_CORE_TO_V1 = {core: v1 for v1, core in _V1_TO_CORE.items()}


def is_event(group: str, plural: str) -> bool:
    return plural == "events" and group in ("", "events.k8s.io")


def convert(obj: JSON, api_version: str) -> JSON:
    """`obj` (an Event in either shape) as `api_version` serves it; `obj` itself when it is so."""
    if obj.get("apiVersion", CORE) == api_version:
        return obj
    names = _CORE_TO_V1 if api_version == EVENTS_V1 else _V1_TO_CORE
    return {names.get(key, key): value for key, value in obj.items()} | {"apiVersion": api_version}


def _namespace_problems(obj: JSON, regarding: JSON, new_style: bool) -> list[tuple[str, str]]:
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    involved = str(regarding.get("namespace") or "")
    mismatch = (
        (not involved and namespace not in ("default", "kube-system"))
        if new_style
        else (namespace != involved if involved else namespace not in ("", "default"))
    )
    if mismatch:
        return [
            (
                "involvedObject.namespace",
                f'Invalid value: "{involved}": does not match event.namespace',
            )
        ]
    return []


def problems(obj: JSON, api_version: str) -> list[tuple[str, str]]:
    """(field, problem) for what creating this Event through `api_version` is refused for."""
    core = api_version == CORE
    regarding = obj.get("involvedObject" if core else "regarding")
    new_style = bool(obj.get("eventTime"))
    found = _namespace_problems(obj, regarding if isinstance(regarding, dict) else {}, new_style)
    if new_style:
        field = "reportingComponent" if core else "reportingController"
        controller = str(obj.get(field) or "")
        if not controller:
            found.append((field, "Required value"))
        found += [
            (field, f'Invalid value: "{controller}": {problem}')
            for problem in qualified_name_problems(controller)
        ]
        for required in ("reportingInstance", "action"):
            if not obj.get(required):
                found.append((required, "Required value"))
    if core:
        return found
    if not new_style:
        found.append(("eventTime", "Required value"))
    if obj.get("type") not in ("Normal", "Warning"):
        found.append(("type", f'Invalid value: "": has invalid value: {obj.get("type") or ""}'))
    for v1_name, core_name in (
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ):
        if obj.get(v1_name):
            found.append((core_name, 'Invalid value: "": needs to be unset'))
    source = obj.get("deprecatedSource")
    if isinstance(source, dict) and (source.get("component") or source.get("host")):
        found.append(("source", 'Invalid value: "": needs to be unset'))
    return found
