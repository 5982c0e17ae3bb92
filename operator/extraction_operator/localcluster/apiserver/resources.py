"""What the emulator serves: the built-in resource types and those registered by CRDs.

A `ResourceType` carries everything discovery, routing, tables and the store need to know about a
resource: its group/version/plural, kind and list kind, scope, short names, categories, whether it
has a status subresource (which decides how writes treat `status`), whether it keeps
`metadata.generation`, the printer columns of a CRD and its structural schema.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from typing import Any

JSON = dict[str, Any]

ALL_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry of a CRD version."""

    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str = ""
    format: str = ""


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource at one group/version."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    has_generation: bool = True
    printer_columns: tuple[PrinterColumn, ...] = ()
    schema: JSON | None = None
    field_selectors: tuple[str, ...] = ()
    any_field_selector: bool = False
    custom: bool = False
    storage_group: str | None = None  # another group whose objects these are (events.k8s.io)
    # A delete that removes the object answers with the object (else with a `Status` Success).
    returns_deleted_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: one store per group and plural, whatever the version (events.k8s.io
        Events are core Events, served through another group)."""
        group = self.group if self.storage_group is None else self.storage_group
        return (group, self.plural)


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    has_status: bool = False,
    has_generation: bool = True,
    field_selectors: tuple[str, ...] = (),
    any_field_selector: bool = False,
    storage_group: str | None = None,
    returns_deleted_object: bool = False,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short_names,
        categories=categories,
        has_status=has_status,
        has_generation=has_generation,
        field_selectors=field_selectors,
        any_field_selector=any_field_selector,
        storage_group=storage_group,
        returns_deleted_object=returns_deleted_object,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _builtin(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        has_status=True,
        has_generation=False,
        field_selectors=("status.phase",),
        returns_deleted_object=True,
    ),
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        has_status=True,
        field_selectors=("status.phase", "spec.nodeName", "spec.restartPolicy"),
        returns_deleted_object=True,
    ),
    _builtin("", "v1", "events", "Event", short_names=("ev",), has_generation=False,
             any_field_selector=True),
    _builtin("", "v1", "configmaps", "ConfigMap", short_names=("cm",), has_generation=False),
    _builtin("", "v1", "secrets", "Secret", has_generation=False),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",),
             has_generation=False, returns_deleted_object=True),
    _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",),
             has_status=True, has_generation=False, returns_deleted_object=True),
    _builtin("batch", "v1", "jobs", "Job", categories=("all",), has_status=True,
             field_selectors=("status.successful",)),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", has_generation=False),
    _builtin("events.k8s.io", "v1", "events", "Event", short_names=("ev",), has_generation=False,
             any_field_selector=True, storage_group=""),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        has_status=True,
        returns_deleted_object=True,
    ),
)  # fmt: skip


def _printer_columns(version: JSON) -> tuple[PrinterColumn, ...]:
    columns = version.get("additionalPrinterColumns") or []
    return tuple(
        PrinterColumn(
            name=str(column.get("name", "")),
            type=str(column.get("type", "string")),
            json_path=str(column.get("jsonPath", "")),
            priority=int(column.get("priority", 0) or 0),
            description=str(column.get("description", "")),
            format=str(column.get("format", "")),
        )
        for column in columns
        if isinstance(column, dict)
    )


def types_from_crd(crd: JSON) -> list[ResourceType]:
    """The resource types a (validated) CustomResourceDefinition serves, one per served version."""
    spec = crd["spec"]
    names = spec["names"]
    result = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        subresources = version.get("subresources") or {}
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in subresources,
                has_generation=True,
                printer_columns=_printer_columns(version),
                schema=schema if isinstance(schema, dict) else None,
                custom=True,
            )
        )
    return result


class ResourceRegistry:
    """The served resource types, looked up by group/version/plural; CRDs add and remove theirs.

    Guarded by a lock because tests may read discovery from another thread while the server's
    loop registers a CRD.
    """

    def __init__(self, builtins: Iterable[ResourceType] = BUILTINS) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for resource in builtins:
            self._types[(resource.group, resource.version, resource.plural)] = resource

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Every served group (core as "") with its versions, preferred (first served) first."""
        result: dict[str, list[str]] = {}
        for resource in self.all():
            versions = result.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
        return result

    def by_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self.all() if r.group == group and r.version == version]

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        return [r for r in self.all() if r.group == group and r.plural == plural]

    def register_crd(self, crd: JSON) -> None:
        name = crd["metadata"]["name"]
        with self._lock:
            for old in self._by_crd.pop(name, []):
                self._types.pop((old.group, old.version, old.plural), None)
            new = types_from_crd(crd)
            for resource in new:
                self._types[(resource.group, resource.version, resource.plural)] = resource
            self._by_crd[name] = new

    def unregister_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            removed = self._by_crd.pop(name, [])
            for old in removed:
                self._types.pop((old.group, old.version, old.plural), None)
            return removed
