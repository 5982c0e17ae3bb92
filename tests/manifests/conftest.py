"""Loading of the install manifests, shared by the manifest tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
EXAMPLES = MANIFESTS / "examples"
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def install_files() -> list[Path]:
    """Every manifest of the install (manifests/ without examples/ and kustomization files)."""
    return sorted(
        path
        for path in MANIFESTS.rglob("*.y*ml")
        if EXAMPLES not in path.parents and path.name not in KUSTOMIZATION_NAMES
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
