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

# Go's messages (k8s.io/apimachinery/pkg/util/validation), regex and examples included.
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',"
    "  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


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
    """Why `name` cannot name an object, or None when it can (Go's first message)."""
    limit, pattern, message = (
        (63, _DNS_LABEL, LABEL_MESSAGE) if dns_label else (253, _DNS_SUBDOMAIN, SUBDOMAIN_MESSAGE)
    )
    if len(name) > limit:
        return f'Invalid value: "{name}": must be no more than {limit} characters'
    if not pattern.match(name):
        return f'Invalid value: "{name}": {message}'
    return None


def qualified_name_problems(value: str) -> list[str]:
    """Go's `IsQualifiedName`: an optional DNS subdomain prefix and "/", then a name part."""
    prefix, slash, name = value.rpartition("/")
    problems = []
    if slash and not prefix:
        problems.append("prefix part must be non-empty")
    elif slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        problems.append(f"prefix part {SUBDOMAIN_MESSAGE}")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _LABEL_NAME.match(name):
        problems.append(QUALIFIED_NAME_MESSAGE)
    return problems


def _key_problems(key: str, lower: bool = False) -> list[str]:
    """A label key (annotation keys are checked lowercased, as Go does)."""
    problems = qualified_name_problems(key.lower() if lower else key)
    return [f'Invalid value: "{key}": {problem}' for problem in problems]


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
                problems += [("metadata.labels", problem) for problem in _key_problems(str(key))]
                if not isinstance(value, str):
                    problems.append((f"metadata.labels[{key}]", "Invalid value: must be a string"))
                elif len(value) > 63:
                    problems.append(
                        (
                            "metadata.labels",
                            f'Invalid value: "{value}": must be no more than 63 characters',
                        )
                    )
                elif not _LABEL_VALUE.match(value):
                    problems.append(
                        ("metadata.labels", f'Invalid value: "{value}": {LABEL_VALUE_MESSAGE}')
                    )
    annotations = metadata.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            problems.append(("metadata.annotations", "Invalid value: must be a map of strings"))
        else:
            for key, value in annotations.items():
                problems += [
                    ("metadata.annotations", problem)
                    for problem in _key_problems(str(key), lower=True)
                ]
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
