"""Real kopf against each backend: it must see create, update and delete and land status patches.

kopf exercises discovery, CRD-based resources, list+watch with bookmarks, merge patches of the
main resource and the status subresource, finalizers (for the delete handler) and events.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "conformance.extraction.dev", "v1", "gizmos"
OPERATOR = Path(__file__).with_name("localcluster_kopf_operator.py")


def test_kopf_handlers_see_create_update_delete(
    cluster: Any,
    crd: Any,
    namespace: str,
    gizmo_body: Callable[..., dict[str, Any]],
    eventually: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    api = cluster.custom
    args = ["run", "--standalone", "--namespace", namespace, "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=30) as runner:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, gizmo_body("kopf"))

        def status() -> dict[str, Any]:
            gizmo = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "kopf")
            result: dict[str, Any] = gizmo.get("status") or {}
            return result

        eventually(lambda: status().get("message") == "created by kopf", timeout=20)
        assert status()["phase"] == "Running"
        gizmo = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "kopf")
        assert gizmo["metadata"]["finalizers"]  # kopf guards its delete handler with a finalizer

        def posted_event() -> bool:
            events = cluster.core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=kopf"
            ).items
            return any(e.reason == "Created" for e in events)

        eventually(posted_event, timeout=20)

        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "kopf", {"spec": {"parallelism": 2}}
        )
        eventually(lambda: status().get("message") == "parallelism is now 2", timeout=20)

        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "kopf")

        def gone() -> bool:
            try:
                api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "kopf")
            except ApiException as error:
                return bool(error.status == 404)
            return False

        eventually(gone, timeout=20)
    assert runner.exception is None
    assert runner.exit_code == 0
    assert "test-operator saw the creation" in runner.output
    assert "test-operator saw the update" in runner.output
    assert "test-operator saw the deletion of kopf" in runner.output
