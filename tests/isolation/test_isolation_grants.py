"""What the operator itself may grant, tried with its own identity (a token bound to its pod).

It must hold the right to create Roles and RoleBindings to grant stage pods `patch` on their run,
and RBAC's escalation rules keep it from granting more than it holds. But it holds a lot, so the
admission policies of manifests/admission/operator-grants.yaml hold every Role and RoleBinding it
writes to the one shape it needs; each other shape is its own case here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from isolation_kit import Tenant, pod_token, request_as, sleeper, unique

from cluster_kit import InstalledOperator

pytestmark = pytest.mark.timeout(180)
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module")
def grants(tenant: Tenant, installed_operator: InstalledOperator) -> Iterator[dict[str, Any]]:
    run = tenant.create_run(unique("granted"), [sleeper()])
    try:
        tenant.wait_node(run, "hold", {"Running"})
        uid = tenant.get(run)["metadata"]["uid"]
        pod = installed_operator.running_pod()
        token = pod_token(tenant.kube, "extraction-system", "extraction-operator", pod)
        yield {"run": run, "uid": uid, "token": token}
    finally:
        tenant.delete_run(run)


def _owner(grants: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"apiVersion": "extraction.dev/v1alpha1", "kind": "ExtractionRun",
             "name": grants["run"], "uid": grants["uid"]}]  # fmt: skip


def _role(name: str, rule: dict[str, Any], owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role",
            "metadata": {"name": name, "ownerReferences": owners}, "rules": [rule]}  # fmt: skip


def _binding(name: str, ref: dict[str, str], subject: dict[str, str], owners: list) -> dict:
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "ownerReferences": owners},
            "roleRef": {"apiGroup": RBAC, **ref}, "subjects": [subject]}  # fmt: skip


def _cases(tenant: Tenant, grants: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    run, owners = grants["run"], _owner(grants)
    runs = {"apiGroups": ["extraction.dev"], "resources": ["extractionruns"], "verbs": ["patch"]}
    account = {"kind": "ServiceAccount", "name": "default", "namespace": tenant.namespace}
    return {
        "role-granting-more": ("roles", _role(
            f"extraction-stage-{run}-x", {**runs, "verbs": ["patch", "get", "list"]}, owners)),
        "role-for-another-run": ("roles", _role(
            f"extraction-stage-{run}-y", {**runs, "resourceNames": ["other-run"]}, owners)),
        "role-with-another-name": ("roles", _role(
            "not-a-stage-grant", {**runs, "resourceNames": [run]}, owners)),
        "role-without-an-owner": ("roles", _role(
            f"extraction-stage-{run}-z", {**runs, "resourceNames": [run]}, [])),
        "binding-of-its-own-cluster-role": ("rolebindings", _binding(
            f"extraction-stage-{run}-a", {"kind": "ClusterRole", "name": "extraction-operator"},
            account, owners)),
        "binding-of-another-role": ("rolebindings", _binding(
            f"extraction-stage-{run}-b", {"kind": "Role", "name": f"extraction-stage-{run}"},
            account, owners)),
        "binding-to-a-user": ("rolebindings", _binding(
            f"extraction-stage-{run}", {"kind": "Role", "name": f"extraction-stage-{run}"},
            {"apiGroup": RBAC, "kind": "User", "name": "mallory"}, owners)),
    }  # fmt: skip


EXPECTED = {
    "role-granting-more": "may grant exactly one thing: patch on the ExtractionRun that owns",
    "role-for-another-run": "patch on the ExtractionRun that owns the Role",
    "role-with-another-name": "Roles named extraction-stage-* that one ExtractionRun owns",
    "role-without-an-owner": "Roles named extraction-stage-* that one ExtractionRun owns",
    "binding-of-its-own-cluster-role": "(never a ClusterRole)",
    "binding-of-another-role": "may only bind the Role of the same name",
    "binding-to-a-user": "may only bind one ServiceAccount of its own namespace",
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_the_operator_may_grant_nothing_but_patch_on_one_run(
    tenant: Tenant, grants: dict[str, Any], case: str
) -> None:
    resource, body = _cases(tenant, grants)[case]
    path = f"/apis/{RBAC}/v1/namespaces/{tenant.namespace}/{resource}"
    if case == "binding-to-a-user":  # an update of the operator's own binding of this run
        path, method = f"{path}/{body['metadata']['name']}", "PATCH"
        body = {"subjects": body["subjects"]}
    else:
        method = "POST"
    status, message = request_as(tenant.kube, grants["token"], method, path, body)
    assert status == 403, message
    assert EXPECTED[case] in message, message


def test_the_operator_may_not_change_a_binding_it_did_not_create(
    tenant: Tenant, grants: dict[str, Any]
) -> None:
    """Someone's own binding that happens to carry a name of the operator's pattern, binding a
    Role whose rights the operator holds (so RBAC alone would let it re-bind it to anyone)."""
    name = f"extraction-stage-{unique('foreign')}"
    tenant.kube.run("create", "role", name, "-n", tenant.namespace, "--verb=patch",
                    "--resource=extractionruns.extraction.dev")  # fmt: skip
    tenant.kube.run("create", "rolebinding", name, "-n", tenant.namespace, f"--role={name}",
                    f"--serviceaccount={tenant.namespace}:default")  # fmt: skip
    path = f"/apis/{RBAC}/v1/namespaces/{tenant.namespace}/rolebindings/{name}"
    body = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "extraction-operator"}}}
    status, message = request_as(tenant.kube, grants["token"], "PATCH", path, body)
    assert status == 403, message
    assert "ValidatingAdmissionPolicy 'extraction-operator-rolebindings'" in message
