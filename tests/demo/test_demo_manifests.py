"""Manifests are checked before anything starts, with messages naming file, run and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from extraction_operator.demo.manifests import (
    ManifestError,
    RunRef,
    bundled_manifest,
    load_manifests,
)

REPO = Path(__file__).resolve().parents[2]

RUN = """
apiVersion: extraction.dev/v1alpha1
kind: ExtractionRun
metadata: {name: NAME}
spec:
  image: example
  stages: [{name: only, command: [python, -c, "pass"]}]
"""


def test_default_is_the_bundled_example_pipeline() -> None:
    manifests = load_manifests([])
    assert manifests.runs == [RunRef("default", "extraction-pipeline")]
    assert bundled_manifest() == (REPO / "manifests/examples/extraction-pipeline.yaml").read_text()


def test_several_files_and_documents_keep_their_order(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(
        RUN.replace("NAME", "one")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
    )
    second = tmp_path / "b.yaml"
    second.write_text(RUN.replace("NAME", "two"))
    manifests = load_manifests([str(first), str(second)])
    assert [ref.key for ref in manifests.runs] == ["default/one", "default/two"]
    assert [obj["kind"] for obj in manifests.objects] == [
        "ExtractionRun",
        "ConfigMap",
        "ExtractionRun",
    ]
    assert manifests.objects[0]["metadata"]["namespace"] == "default"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        RUN.replace("NAME", "typo").replace("command:", "comand:")
        + "---\n"
        + RUN.replace("NAME", "cycle").replace("stages: [", "stages: [{name: a, dependsOn: [a]}, ")
        + "---\n- just a list\n"
    )
    with pytest.raises(ManifestError) as caught:
        load_manifests([str(bad), str(tmp_path / "missing.yaml")])
    message = str(caught.value)
    assert f"{bad} (document 1): run default/typo: spec.stages[0].comand: unknown field" in message
    assert "run default/cycle: spec.stages[0].dependsOn[0]: stage 'a' depends on itself" in message
    assert f"{bad} (document 3): must be a Kubernetes object (a mapping), got list" in message
    assert "missing.yaml: cannot read it" in message


def test_shared_objects_may_repeat_across_files() -> None:
    examples = REPO / "manifests" / "examples"
    manifests = load_manifests(
        [str(examples / "extraction-pipeline.yaml"), str(examples / "fanout-flaky.yaml")]
    )
    assert [ref.name for ref in manifests.runs] == ["extraction-pipeline", "fanout-flaky"]
    kinds = [obj["kind"] for obj in manifests.objects]
    assert kinds.count("PersistentVolumeClaim") == 2


def test_duplicates_wrong_versions_and_no_runs_are_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text(RUN.replace("NAME", "x") + "---\n" + RUN.replace("NAME", "x"))
    with pytest.raises(ManifestError, match="ExtractionRun default/x appears twice"):
        load_manifests([str(twice)])
    old = tmp_path / "old.yaml"
    old.write_text(RUN.replace("NAME", "x").replace("v1alpha1", "v1alpha0"))
    with pytest.raises(ManifestError, match=r"apiVersion must be extraction\.dev/v1alpha1"):
        load_manifests([str(old)])
    none = tmp_path / "none.yaml"
    none.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    with pytest.raises(ManifestError, match="no ExtractionRun in the manifests"):
        load_manifests([str(none)])


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    with pytest.raises(ManifestError, match=r"broken\.yaml: not valid YAML"):
        load_manifests([str(broken)])
