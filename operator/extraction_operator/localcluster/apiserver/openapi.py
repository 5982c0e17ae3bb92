"""The OpenAPI v3 documents kubectl reads before `apply`.

kubectl validates manifests either on the server (when the OpenAPI v3 document of the resource's
group/version shows a PATCH operation accepting the `fieldValidation` query parameter) or on the
client with the OpenAPI v2 schema. Publishing the v3 paths makes kubectl take the server route, so
`kubectl apply` works without `--validate=false`. The PATCH operations of built-in kinds do not
list strategic merge patch, so kubectl computes its patches from its compiled-in types, which
know the merge keys; CRD kinds carry their structural schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ResourceRegistry, ResourceType

JSON = dict[str, Any]

_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(resource: ResourceType) -> str:
    group = ".".join(reversed(resource.group.split("."))) if resource.group else "io.k8s.api.core"
    return f"{group}.{resource.version}.{resource.kind}"


def _operation(resource: ResourceType, action: str, with_body: bool) -> JSON:
    operation: JSON = {
        "operationId": f"{action}{resource.kind}",
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
    }
    if with_body:
        types = _PATCH_TYPES if action == "patch" else ("application/json",)
        operation["requestBody"] = {
            "content": {t: {"schema": {"type": "object"}} for t in types},
            "required": True,
        }
    return operation


def root(registry: ResourceRegistry) -> JSON:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            path = _gv_path(group, version)
            digest = hashlib.sha256(
                json.dumps(group_version(registry, group, version), sort_keys=True).encode()
            ).hexdigest()[:16]
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def group_version(registry: ResourceRegistry, group: str, version: str) -> JSON:
    paths: JSON = {}
    schemas: JSON = {}
    base = "/" + _gv_path(group, version)
    for resource in registry.by_group_version(group, version):
        prefix = f"{base}/namespaces/{{namespace}}" if resource.namespaced else base
        collection = f"{prefix}/{resource.plural}"
        paths[collection] = {
            "post": _operation(resource, "post", True),
            "get": _operation(resource, "list", False),
        }
        paths[f"{collection}/{{name}}"] = {
            "get": _operation(resource, "get", False),
            "put": _operation(resource, "put", True),
            "patch": _operation(resource, "patch", True),
            "delete": _operation(resource, "delete", False),
        }
        if resource.custom:
            schema = dict(resource.schema or {"type": "object"})
            schema["x-kubernetes-group-version-kind"] = [
                {"group": resource.group, "version": resource.version, "kind": resource.kind}
            ]
            schemas[_schema_name(resource)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
