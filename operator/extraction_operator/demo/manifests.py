"""Load the manifests the demo applies, and refuse bad ones before starting anything.

A run with an invalid spec would only show up as `Stalled` after the cluster and operator started;
checking with the operator's own `parse_spec` first gives the same messages (field and fix) at once.
The default manifest is the example pipeline shipped inside the package, so `extraction-operator
demo` works from an installed wheel as well as from a checkout (where `manifests/examples/` holds an
identical copy, kept equal by a test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from extraction_operator.api import constants
from extraction_operator.api.validation import parse_spec

DEFAULT_MANIFEST = "extraction-pipeline.yaml"
EXAMPLES_PACKAGE = "extraction_operator.examples"


class ManifestError(Exception):
    """The manifests cannot be applied; the message lists every problem found."""


@dataclass(frozen=True)
class RunRef:
    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Manifests:
    """Every object to apply, in file order, and which of them are ExtractionRuns."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    runs: list[RunRef] = field(default_factory=list)


def bundled_manifest(name: str = DEFAULT_MANIFEST) -> str:
    """The text of a manifest shipped in `extraction_operator/examples/manifests/`."""
    folder = resources.files(EXAMPLES_PACKAGE).joinpath("manifests")
    return folder.joinpath(name).read_text(encoding="utf-8")


def load_manifests(paths: Sequence[str]) -> Manifests:
    """Parse and check the given files (the bundled example when none are given)."""
    sources: list[tuple[str, str]] = []
    problems: list[str] = []
    if not paths:
        sources.append((f"bundled {DEFAULT_MANIFEST}", bundled_manifest()))
    for path in paths:
        try:
            sources.append((path, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{path}: cannot read it ({error})")
    manifests = Manifests()
    seen: set[tuple[str, str, str]] = set()
    for label, content in sources:
        try:
            documents = [doc for doc in yaml.safe_load_all(content) if doc is not None]
        except yaml.YAMLError as error:
            problems.append(f"{label}: not valid YAML ({error})")
            continue
        for index, document in enumerate(documents):
            where = f"{label} (document {index + 1})"
            problems.extend(_check_object(document, where, manifests, seen))
    if not problems and not manifests.runs:
        problems.append("no ExtractionRun in the manifests; give at least one run to demonstrate")
    if problems:
        raise ManifestError("\n".join(problems))
    return manifests


def _check_object(
    document: Any, where: str, manifests: Manifests, seen: set[tuple[str, str, str]]
) -> list[str]:
    if not isinstance(document, Mapping):
        return [f"{where}: must be a Kubernetes object (a mapping), got {type(document).__name__}"]
    obj = dict(document)
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    if not isinstance(kind, str) or not isinstance(obj.get("apiVersion"), str):
        return [f"{where}: apiVersion and kind are required"]
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        return [f"{where}: metadata.name is required"]
    metadata = dict(metadata)
    metadata.setdefault("namespace", "default")
    obj["metadata"] = metadata
    identity = (kind, str(metadata["namespace"]), str(metadata["name"]))
    if kind != constants.KIND:
        # Applied in order like `kubectl apply` would: two example files may both carry the
        # workspace claim they share.
        manifests.objects.append(obj)
        return []
    if identity in seen:
        return [f"{where}: {kind} {identity[1]}/{identity[2]} appears twice"]
    seen.add(identity)
    if obj["apiVersion"] != constants.API_VERSION:
        return [f"{where}: apiVersion must be {constants.API_VERSION}, not {obj['apiVersion']}"]
    _, spec_problems = parse_spec(obj.get("spec"))
    if spec_problems:
        return [f"{where}: run {identity[1]}/{identity[2]}: {p}" for p in spec_problems]
    manifests.objects.append(obj)
    manifests.runs.append(RunRef(namespace=identity[1], name=identity[2]))
    return []
