"""Every manifest under manifests/ validates offline against the Kubernetes API schemas, the
kustomization installs every one of them, and the YAML passes yamllint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, major_minor
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from extraction_operator.api.constants import KIND

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
EXAMPLES = MANIFESTS / "examples"
ARGOCD = MANIFESTS / "argocd"  # a Lua health check and its test data, not Kubernetes objects
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
# A version every supported cluster has reached, and the newest the validator knows about.
KUBERNETES_VERSIONS = sorted({"1.33", major_minor(latest_version())})


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _validatable() -> list[tuple[str, dict[str, Any]]]:
    """Install manifests and the examples' built-in objects (the ExtractionRuns themselves are
    checked against the CRD in tests/api)."""
    found = []
    for path in sorted(MANIFESTS.rglob("*.y*ml")):
        if path.name in KUSTOMIZATION_NAMES or ARGOCD in path.parents:
            continue
        for index, document in enumerate(_documents(path)):
            # Custom resources have no built-in schema: ExtractionRuns are checked against our CRD
            # in tests/api, kopf's peering objects only by the API server that serves its CRD.
            # Prometheus Operator's objects (the monitoring component) likewise.
            custom = document.get("kind") == KIND or str(document.get("apiVersion", "")).startswith(
                ("kopf.dev/", "monitoring.coreos.com/")
            )
            if not custom:
                found.append((f"{path.relative_to(REPO)}#{index}", document))
    return found


DOCUMENTS = _validatable()


def test_there_is_something_to_validate() -> None:
    kinds = {document["kind"] for _, document in DOCUMENTS}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "Deployment", "Role"} <= kinds
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("where", "document"), DOCUMENTS, ids=[w for w, _ in DOCUMENTS])
def test_manifest_validates_offline(where: str, document: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(map(str, error.path))
        pytest.fail(f"{where} is invalid for Kubernetes {version}: {path}: {error.message}")


def test_offline_validation_is_strict_about_typos() -> None:
    """Without strict mode a misspelt field passes silently; make sure the check has teeth."""
    (deployment,) = [d for _, d in DOCUMENTS if d["kind"] == "Deployment"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


# -------------------------------------------------------------------------------- kustomization


def _kustomized_files(directory: Path, seen: set[Path]) -> set[Path]:
    """Files a kustomization pulls in, following directory resources recursively."""
    (kustomization,) = [directory / n for n in KUSTOMIZATION_NAMES if (directory / n).exists()]
    files: set[Path] = set()
    for resource in yaml.safe_load(kustomization.read_text()).get("resources", []):
        target = (directory / resource).resolve()
        if target in seen:
            continue
        seen.add(target)
        if target.is_dir():
            files |= _kustomized_files(target, seen)
        else:
            files.add(target)
    return files


def test_kustomization_installs_every_manifest_and_the_crd(install_paths: list[Path]) -> None:
    expected = {path.resolve() for path in install_paths}
    crds = REPO / "crds"
    if not any((crds / name).exists() for name in KUSTOMIZATION_NAMES):
        pytest.fail(
            "crds/kustomization.yaml is missing: manifests/kustomization.yaml includes `../crds` "
            "as a kustomization (kustomize refuses single files outside manifests/)"
        )
    installed = _kustomized_files(MANIFESTS, set())
    assert expected - installed == set(), "manifests not listed in a kustomization"
    assert (crds / "extractionruns.yaml").resolve() in installed
    assert not any(EXAMPLES in path.parents for path in installed), "examples are not installed"


def test_every_component_lists_all_of_its_files(component_paths: list[Path]) -> None:
    for directory in component_paths:
        listed = _kustomized_files(directory, set())
        files = {
            path.resolve()
            for path in directory.glob("*.y*ml")
            if path.name not in KUSTOMIZATION_NAMES
        }
        assert files - listed == set(), f"{directory} has files its kustomization omits"


KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


@needs_kubectl
def test_kubectl_kustomize_builds_the_install() -> None:
    built = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in _kustomize(MANIFESTS)
    }
    assert built == {
        ("CustomResourceDefinition", None, "extractionruns.extraction.dev"),
        ("Namespace", None, "extraction-system"),
        ("ServiceAccount", "extraction-system", "extraction-operator"),
        ("ClusterRole", None, "extraction-operator"),
        ("ClusterRoleBinding", None, "extraction-operator"),
        ("Deployment", "extraction-system", "extraction-operator"),
        ("ServiceAccount", "default", "extraction-stage"),
        ("ValidatingAdmissionPolicy", None, "extraction-stage-confinement"),
        ("ValidatingAdmissionPolicyBinding", None, "extraction-stage-confinement"),
        ("ValidatingAdmissionPolicy", None, "extraction-operator-roles"),
        ("ValidatingAdmissionPolicyBinding", None, "extraction-operator-roles"),
        ("ValidatingAdmissionPolicy", None, "extraction-operator-rolebindings"),
        ("ValidatingAdmissionPolicyBinding", None, "extraction-operator-rolebindings"),
    }


@needs_kubectl
def test_stage_permissions_move_to_another_namespace_with_an_overlay(tmp_path: Path) -> None:
    """The documented way to give stage pods their identity in another namespace: an overlay that
    sets `namespace:` (the operator grants it `patch` on each of its runs there)."""
    shutil.copytree(MANIFESTS / "stage", tmp_path / "stage")
    overlay = tmp_path / "team-a"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("namespace: team-a\nresources: [../stage]\n")
    documents = _kustomize(overlay)
    assert {d["metadata"]["namespace"] for d in documents} == {"team-a"}
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("ServiceAccount", "extraction-stage")
    ]


# ---------------------------------------------------------------------------------------- lint


def test_yamllint_is_clean() -> None:
    config = YamlLintConfig(file=str(REPO / ".yamllint.yaml"))
    errors = []
    for directory in (MANIFESTS, REPO / "crds"):
        for path in sorted(directory.rglob("*.y*ml")):
            for problem in linter.run(path.read_text(), config, str(path)):
                if problem.level == "error":
                    errors.append(f"{path.relative_to(REPO)}:{problem.line}: {problem.message}")
    assert errors == []
