"""Claims get pre-bound hostPath volumes; the real PV controller binds them, pods share them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.localcluster.kubeapi import PODS, PVCS, PVS, ApiClient
from extraction_operator.localcluster.node import ProcessNode
from extraction_operator.localcluster.nodetesting import (
    container_state,
    phase,
    pod_manifest,
    wait_finished,
    wait_gone,
)
from extraction_operator.localcluster.provisioner import PROVISIONED_BY, PROVISIONER
from extraction_operator.localcluster.testing import wait_for

pytestmark = pytest.mark.timeout(90)
JSON = dict[str, Any]


def claim(name: str, storage: str = "1Gi") -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
    }


def with_claim(manifest: JSON, claim_name: str, mount_path: str) -> JSON:
    manifest["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}
    ]
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": mount_path}]
    return manifest


async def test_claim_gets_a_hostpath_volume_that_pods_share(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    await admin.create(PVCS.path(namespace), claim("shared", "2Gi"))
    # The path is an argument, so the node maps it to the volume's directory (podspec rules).
    writer = pod_manifest("writer", ["sh", "-c", 'echo "from writer" > "$0/note"', "/data"])
    await admin.create(PODS.path(namespace), with_claim(writer, "shared", "/data"))
    pod = await wait_finished(admin, namespace, "writer")
    assert phase(pod) == "Succeeded", node.logs(namespace, "writer")
    reader = pod_manifest("reader", ["sh", "-c", 'cat "$0/note" > "$TERMINATION_MESSAGE_PATH"',
                                     "/mnt/shared"])  # fmt: skip
    await admin.create(PODS.path(namespace), with_claim(reader, "shared", "/mnt/shared"))
    pod = await wait_finished(admin, namespace, "reader")
    assert container_state(pod)["terminated"]["message"] == "from writer\n"

    pvc = await admin.get(PVCS.path(namespace, "shared"))
    assert pvc["status"]["phase"] == "Bound"  # bound by the real PV controller
    pv = await admin.get(PVS.path(None, pvc["spec"]["volumeName"]))
    assert pv["spec"]["capacity"]["storage"] == "2Gi"
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["metadata"]["annotations"][PROVISIONED_BY] == PROVISIONER
    host = Path(pv["spec"]["hostPath"]["path"])
    assert host.is_relative_to(node.workdir)
    assert (host / "note").read_text() == "from writer\n"


async def test_released_volume_is_reclaimed(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    await admin.create(PVCS.path(namespace), claim("scratch"))

    async def bound() -> JSON | None:
        pvc = await admin.get(PVCS.path(namespace, "scratch"))
        return pvc if (pvc.get("status") or {}).get("phase") == "Bound" else None

    pvc = await wait_for(bound, within=30, what="the claim to be bound")
    pv_name = pvc["spec"]["volumeName"]
    host = Path((await admin.get(PVS.path(None, pv_name)))["spec"]["hostPath"]["path"])
    assert await asyncio.to_thread(host.is_dir)
    await admin.delete(PVCS.path(namespace, "scratch"))
    await wait_gone(admin, PVS.path(None, pv_name), within=40)
    assert not await asyncio.to_thread(host.exists)
