"""Generate the ExtractionRun CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema 2020-12; a CRD wants a *structural* OpenAPI v3.0 schema. The converter
inlines `$ref`s, turns `X | None` into an optional `X`, rewrites draft-2020 `exclusiveMinimum: n`
into OpenAPI's `minimum: n, exclusiveMinimum: true`, keeps only scalar defaults, and fails loudly on
any keyword the API server would reject, so a model change can never silently produce a CRD that
`kubectl apply` refuses.
"""

from __future__ import annotations

from typing import Any

from .constants import CRD_NAME, GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from .immutability import ROOT_RULES
from .models import ExtractionRunSpec, ExtractionRunStatus

JSON = dict[str, Any]

_SCALARS = {"string", "integer", "number", "boolean"}
# Keywords of apiextensions.k8s.io/v1 JSONSchemaProps that a structural schema may carry here.
_ALLOWED = {
    "type", "properties", "items", "additionalProperties", "required", "description", "default",
    "enum", "format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "anyOf",
    "nullable", "x-kubernetes-int-or-string", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
}  # fmt: skip
_DROPPED = {"title", "propertyNames", "$defs", "examples"}

# CEL rules on spec. Each walks lists bounded by maxItems, so the estimated cost stays well under
# the per-rule limit: 100 stages x 32 dependsOn x 100 stages x name comparisons of <= 40 chars.
SPEC_RULES: list[JSON] = [
    {
        "rule": "self.stages.all(s, !has(s.dependsOn) || "
        "s.dependsOn.all(d, self.stages.exists(t, t.name == d)))",
        "message": "every stages[].dependsOn entry must be the name of a stage of this run",
        "fieldPath": ".stages",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "self.stages.all(s, !has(s.circuits) || "
        "s.circuits.all(c, has(self.circuitBreakers) && c in self.circuitBreakers))",
        "message": "every stages[].circuits entry must be declared under spec.circuitBreakers",
        "fieldPath": ".stages",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "has(self.image) || self.stages.all(s, has(s.image))",
        "message": "set spec.image, or an image on every stage",
        "fieldPath": ".image",
        "reason": "FieldValueRequired",
    },
]
STAGES_RULES: list[JSON] = [
    {
        "rule": "self == oldSelf",
        "message": "spec.stages is immutable after creation; create a new ExtractionRun instead",
    }
]


class SchemaError(ValueError):
    """The models produced a schema the Kubernetes API server would not accept."""


def _resolve(schema: JSON, defs: JSON) -> JSON:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**defs[name], **rest}
    return schema


def _structural(schema: JSON, defs: JSON, path: str) -> JSON:
    schema = _resolve(schema, defs)
    any_of = schema.get("anyOf")
    if any_of and not schema.get("x-kubernetes-int-or-string"):
        branches = [b for b in any_of if b.get("type") != "null"]
        if len(branches) != 1:
            raise SchemaError(f"{path}: unions other than `X | None` are not structural")
        outer = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        schema = {**_resolve(branches[0], defs), **outer}
    out: JSON = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key not in _ALLOWED and key != "patternProperties":
            raise SchemaError(f"{path}: keyword {key!r} is not allowed in a structural schema")
        if key == "patternProperties":
            # Constrained map keys: the API server cannot check them, the operator's parser does.
            (sub,) = value.values()
            out["additionalProperties"] = _structural(sub, defs, f"{path}{{}}")
        elif key == "properties":
            out[key] = {
                name: _structural(sub, defs, f"{path}.{name}") for name, sub in value.items()
            }
        elif key == "items":
            out[key] = _structural(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            # `false` is implied by pruning, and the API server rejects it beside `properties`.
            if isinstance(value, dict):
                out[key] = _structural(value, defs, f"{path}{{}}")
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "default":
            if schema.get("type") in _SCALARS and value is not None:
                out[key] = value
        elif key == "description":
            out[key] = " ".join(str(value).split())
        else:
            out[key] = value
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: every schema node needs a type")
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _keyed_by_name(list_schema: JSON) -> None:
    list_schema["x-kubernetes-list-type"] = "map"
    list_schema["x-kubernetes-list-map-keys"] = ["name"]


def spec_schema() -> JSON:
    raw = ExtractionRunSpec.model_json_schema(by_alias=True, mode="validation")
    schema = _structural(raw, raw.get("$defs", {}), "spec")
    schema["description"] = "What to run: the stages of the pipeline as a DAG, and how to run them."
    schema["x-kubernetes-validations"] = SPEC_RULES
    stages = schema["properties"]["stages"]
    _keyed_by_name(stages)
    stages["x-kubernetes-validations"] = STAGES_RULES
    _keyed_by_name(schema["properties"]["env"])
    _keyed_by_name(stages["items"]["properties"]["env"])
    return schema


def _without_defaults(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [_without_defaults(item) for item in schema]
    return schema


def status_schema() -> JSON:
    raw = ExtractionRunStatus.model_json_schema(by_alias=True, mode="serialization")
    # No defaults in status: the operator writes all of it, and a default the API server fills in
    # (`failures: 0`) would make every planned status differ from the stored one, so the operator
    # would rewrite an unchanged status on every event.
    schema: JSON = _without_defaults(_structural(raw, raw.get("$defs", {}), "status"))
    schema["description"] = "What the operator observed: run and node phases, conditions, circuits."
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    # The one exception, for a run the operator has not seen yet: with no status at all, kstatus
    # (Flux's health checks) reads a custom resource without conditions as Current, i.e. done,
    # before it has even started. A status that says "generation 0 observed" reads InProgress
    # until the operator's first write replaces it; a written status never gets the default.
    schema["default"] = {"observedGeneration": 0}
    return schema


def generate_crd() -> JSON:
    """The full CRD document, as committed in `crds/extractionruns.yaml`."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/name": "extraction-operator"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["extraction"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
                        {
                            "name": "Message",
                            "type": "string",
                            "jsonPath": ".status.message",
                            "priority": 1,
                        },
                        {
                            "name": "Circuits",
                            "type": "string",
                            "jsonPath": ".status.circuitSummary",
                            "priority": 1,
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A multi-stage extraction pipeline run as Jobs.",
                            "required": ["spec"],
                            "x-kubernetes-validations": ROOT_RULES,
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    import yaml

    class _NoAliasDumper(yaml.SafeDumper):
        """Shared sub-lists would otherwise become YAML anchors, which some tools mishandle."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    header = "# Generated by `extraction-operator crd` from the pydantic models. Do not edit.\n"
    return header + yaml.dump(generate_crd(), Dumper=_NoAliasDumper, sort_keys=False, width=100)
