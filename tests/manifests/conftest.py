"""Loading of the install manifests, shared by the manifest tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
EXAMPLES = MANIFESTS / "examples"
# Argo CD's resource customization (a Lua health check and its test data): not Kubernetes objects.
ARGOCD = MANIFESTS / "argocd"
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def component_dirs() -> list[Path]:
    """Opt-in kustomize Components under manifests/ (e.g. ha/): not part of the base install."""
    found = []
    for directory in sorted({path.parent for path in MANIFESTS.rglob("kustomization.y*ml")}):
        for name in KUSTOMIZATION_NAMES:
            candidate = directory / name
            if candidate.exists() and yaml.safe_load(candidate.read_text()).get("kind") == (
                "Component"
            ):
                found.append(directory)
    return found


def install_files() -> list[Path]:
    """Every manifest of the base install (manifests/ without examples/, argocd/, opt-in
    components and kustomization files)."""
    excluded = [EXAMPLES, ARGOCD, *component_dirs()]
    return sorted(
        path
        for path in MANIFESTS.rglob("*.y*ml")
        if not any(directory in path.parents for directory in excluded)
        and path.name not in KUSTOMIZATION_NAMES
    )


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="session")
def install_paths() -> list[Path]:
    return install_files()


@pytest.fixture(scope="session")
def install_objects(install_paths: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """The install's objects keyed by (kind, name)."""
    objects = {}
    for path in install_paths:
        for document in load_documents(path):
            key = (document["kind"], document["metadata"]["name"])
            assert key not in objects, f"{key} is defined twice"
            objects[key] = document
    return objects


@pytest.fixture(scope="session")
def component_paths() -> list[Path]:
    return component_dirs()
