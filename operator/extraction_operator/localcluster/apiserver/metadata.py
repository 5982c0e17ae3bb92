"""Object metadata rules every write goes through: names, labels, owner references, timestamps.

A real API server rejects a Job named `run-right[3]-1` or a label value with a slash; an operator
that only ever met a permissive fake would ship that bug. So names, label keys and values,
annotations, finalizers and ownerReferences are validated here with the API server's rules and
messages (422 Invalid naming the field).
"""

from __future__ import annotations

import datetime
import re
import secrets
from typing import Any

JSON = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    """A timestamp in the API server's format (RFC 3339, seconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp_in(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    """`generateName` + 5 random characters, from the alphabet the API server uses."""
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def name_problem(name: str, *, dns_label: bool) -> str | None:
    """Why `name` cannot name an object, or None when it can."""
    if dns_label:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', start and end with an alphanumeric character, "
                "and be at most 63 characters"
            )
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (at most 253 characters)"
        )
    return None


def _label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f'Invalid value: "{key}": prefix part must be a lowercase RFC 1123 subdomain'
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
            "'-', '_' or '.', must start and end with an alphanumeric character, "
            "and be at most 63 characters"
        )
    return None


def metadata_problems(metadata: Any) -> list[tuple[str, str]]:
    """(field, problem) for every malformed part of `metadata` a client sent."""
    if not isinstance(metadata, dict):
        return [("metadata", "Invalid value: metadata must be an object")]
    problems: list[tuple[str, str]] = []
    labels = metadata.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            problems.append(("metadata.labels", "Invalid value: must be a map of strings"))
        else:
            for key, value in labels.items():
                if (problem := _label_key_problem(str(key))) is not None:
                    problems.append(("metadata.labels", problem))
                if not isinstance(value, str):
                    problems.append((f"metadata.labels[{key}]", "Invalid value: must be a string"))
                elif len(value) > 63 or not _LABEL_VALUE.match(value):
                    problems.append(
                        (
                            "metadata.labels",
                            f'Invalid value: "{value}": a valid label must be an empty string or '
                            "consist of alphanumeric characters, '-', '_' or '.', and must start "
                            "and end with an alphanumeric character (at most 63 characters)",
                        )
                    )
    annotations = metadata.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            problems.append(("metadata.annotations", "Invalid value: must be a map of strings"))
        else:
            for key, value in annotations.items():
                if (problem := _label_key_problem(str(key))) is not None:
                    problems.append(("metadata.annotations", problem))
                if not isinstance(value, str):
                    problems.append(
                        (f"metadata.annotations[{key}]", "Invalid value: must be a string")
                    )
    finalizers = metadata.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        problems.append(("metadata.finalizers", "Invalid value: must be a list of strings"))
    owners = metadata.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list):
            problems.append(("metadata.ownerReferences", "Invalid value: must be a list"))
        else:
            for index, owner in enumerate(owners):
                field = f"metadata.ownerReferences[{index}]"
                if not isinstance(owner, dict):
                    problems.append((field, "Invalid value: must be an object"))
                    continue
                for required in ("apiVersion", "kind", "name", "uid"):
                    if not owner.get(required):
                        problems.append((f"{field}.{required}", "Required value"))
            controllers = [o for o in owners if isinstance(o, dict) and o.get("controller")]
            if len(controllers) > 1:
                problems.append(
                    (
                        "metadata.ownerReferences",
                        "Invalid value: Only one reference can have Controller set to true",
                    )
                )
    return problems


def labels_of(obj: JSON) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}
