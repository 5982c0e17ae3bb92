"""LocalCluster conveniences: manifest loading, apply (create, then update), CRD registration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extraction_operator.api.constants import PLURAL
from extraction_operator.localcluster.cluster import LocalCluster, load_manifests
from extraction_operator.localcluster.kubeapi import Resource

pytestmark = pytest.mark.timeout(30)
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def test_load_manifests_reads_multi_document_yaml_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    listing = {"apiVersion": "v1", "kind": "List", "items": [cm, cm]}
    path.write_text(yaml.safe_dump(cm) + "---\n# nothing\n---\n" + yaml.safe_dump(listing))
    assert load_manifests(path) == [cm, cm, cm]
    assert load_manifests(cm) == [cm]
    with pytest.raises(ValueError, match="apiVersion and kind"):
        load_manifests([{"kind": "ConfigMap"}])


async def test_apply_creates_then_updates(cluster: LocalCluster) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "1"}}
    [created] = await cluster.apply(cm)
    assert created["metadata"]["namespace"] == "default"
    [updated] = await cluster.apply({**cm, "data": {"k": "2"}})
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["data"] == {"k": "2"}


async def test_apply_crds_serves_extractionruns_and_accepts_the_example(
    cluster: LocalCluster,
) -> None:
    await cluster.apply_crds()
    [run] = await cluster.apply(EXAMPLES / "minimal.yaml")
    resource = Resource(run["apiVersion"], PLURAL)
    stored = await cluster.client.get(resource.path("default", run["metadata"]["name"]))
    assert stored["metadata"]["uid"] == run["metadata"]["uid"]
    assert cluster.kubeconfig.is_file()
    assert cluster.url in cluster.kubeconfig.read_text()
