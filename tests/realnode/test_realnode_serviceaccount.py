"""Pods get their own service account token, mounted where in-cluster clients look for it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from extraction_operator.localcluster.kubeapi import PODS, SERVICEACCOUNTS, ApiClient, Resource
from extraction_operator.localcluster.node import ProcessNode
from extraction_operator.localcluster.nodetesting import (
    container_state,
    phase,
    pod_manifest,
    wait_finished,
    wait_pod,
)
from extraction_operator.localcluster.testing import python, wait_for

pytestmark = pytest.mark.timeout(90)
JSON = dict[str, Any]
ROLES = Resource("rbac.authorization.k8s.io/v1", "roles")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io/v1", "rolebindings")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Runs in the pod: what the pod's in-cluster identity may do, and who it is, both ways in.
IN_CLUSTER = f"""
import json, os
from kubernetes import client, config

def whoami():
    review = client.AuthenticationV1Api().create_self_subject_review(client.V1SelfSubjectReview())
    return review.status.user_info

config.load_incluster_config()
out = {{"configmaps": len(client.CoreV1Api().list_namespaced_config_map(os.environ["NS"]).items)}}
try:
    client.CoreV1Api().list_namespaced_secret(os.environ["NS"])
    out["secrets"] = 200
except client.ApiException as exc:
    out["secrets"] = exc.status
info = whoami()
out["user"] = info.username
out["pod"] = (info.extra or {{}}).get("authentication.kubernetes.io/pod-name")
out["namespace_file"] = open("{SA_DIR}/namespace").read()
config.load_kube_config()  # $KUBECONFIG: the node's kubeconfig for this pod
out["kubeconfig_user"] = whoami().username
open(os.environ["TERMINATION_MESSAGE_PATH"], "w").write(json.dumps(out))
"""


async def grant_configmap_reads(admin: ApiClient, namespace: str, account: str) -> None:
    await admin.create(SERVICEACCOUNTS.path(namespace), {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}})  # fmt: skip
    await admin.create(ROLES.path(namespace), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    })  # fmt: skip
    await admin.create(ROLEBINDINGS.path(namespace), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "configmap-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "configmap-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    })  # fmt: skip


def mounts(mountinfo: Path) -> dict[str, str]:
    """Mount point -> the directory of its filesystem mounted there (fields 5 and 4)."""
    table = {}
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        table[fields[4]] = fields[3]
    return table


def message(pod: JSON) -> JSON:
    result: JSON = json.loads(container_state(pod)["terminated"]["message"])
    return result


async def test_pod_acts_in_cluster_with_its_own_service_account_token(
    admin: ApiClient, namespace: str
) -> None:
    await grant_configmap_reads(admin, namespace, "reader")
    manifest = pod_manifest("in-cluster", python(IN_CLUSTER), serviceAccountName="reader",
                            container={"env": [{"name": "NS", "value": namespace}]})  # fmt: skip
    await admin.create(PODS.path(namespace), manifest)
    pod = await wait_finished(admin, namespace, "in-cluster")
    assert phase(pod) == "Succeeded", container_state(pod)
    seen = message(pod)
    account = f"system:serviceaccount:{namespace}:reader"
    assert seen["configmaps"] >= 1  # kube-root-ca.crt: the Role allows it
    assert seen["secrets"] == 403  # the Role does not
    assert seen["user"] == account
    assert seen["pod"] == ["in-cluster"]  # the token is bound to this very pod
    assert seen["namespace_file"] == namespace
    assert seen["kubeconfig_user"] == account  # KUBECONFIG carries the pod's token, not the node's


async def test_token_mount_is_private_to_the_pods_process(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    if node.agent.mounts is None:
        pytest.skip("this host cannot make private mount namespaces")
    gate = node.workdir / f"gate-{namespace}"
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done; sha256sum {SA_DIR}/token"
    await admin.create(PODS.path(namespace), pod_manifest("private", ["sh", "-c", script]))
    await wait_pod(admin, namespace, "private", lambda p: phase(p) == "Running")
    pid = node.pid_of(namespace, "private")
    assert pid is not None
    [token_file] = (node.workdir / "kubelet" / "pods" / namespace).glob("private-*/volumes/*/token")
    target = await asyncio.to_thread(os.path.realpath, SA_DIR)  # /var/run: often a link

    async def mounted() -> dict[str, str] | None:  # the prologue mounts as the process starts
        table = mounts(Path(f"/proc/{pid}/mountinfo"))
        return table if target in table else None

    theirs = await wait_for(mounted, within=10, what="the service account mount")
    assert str(token_file.parent).endswith(theirs[target])  # a bind mount of its own volume
    assert target not in mounts(Path("/proc/self/mountinfo"))  # and nobody else sees it
    gate.touch()
    pod = await wait_finished(admin, namespace, "private")
    assert phase(pod) == "Succeeded"
    digest = hashlib.sha256(token_file.read_bytes()).hexdigest()
    assert node.logs(namespace, "private").split()[0] == digest


async def test_automount_false_gives_the_pod_no_token(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    code = (
        "import os, json; out = {'token': os.path.exists('" + SA_DIR + "/token'),"
        " 'kubeconfig': open(os.environ['KUBECONFIG']).read()};"
        "open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write(json.dumps(out))"
    )
    manifest = pod_manifest("no-token", python(code), automountServiceAccountToken=False)
    await admin.create(PODS.path(namespace), manifest)
    pod = await wait_finished(admin, namespace, "no-token")
    seen = message(pod)
    if node.agent.mounts is not None:
        assert seen["token"] is False
    kubeconfig = yaml.safe_load(seen["kubeconfig"])
    assert kubeconfig["users"][0]["user"] == {}  # no credentials of anyone's


async def test_token_is_refreshed_while_the_pod_runs(
    admin: ApiClient, namespace: str, extra_node: Callable[..., ProcessNode]
) -> None:
    refreshing = extra_node("refresh-node", token_refresh_seconds=1.0)
    if refreshing.agent.mounts is None:
        pytest.skip("this host cannot make private mount namespaces")
    code = f"""
import os, time
from kubernetes import client, config
first = open("{SA_DIR}/token").read()
deadline = time.time() + 20
while open("{SA_DIR}/token").read() == first and time.time() < deadline:
    time.sleep(0.1)
assert open("{SA_DIR}/token").read() != first, "the token was never refreshed"
config.load_incluster_config()  # with the new token
review = client.AuthenticationV1Api().create_self_subject_review(client.V1SelfSubjectReview())
open(os.environ["TERMINATION_MESSAGE_PATH"], "w").write(review.status.user_info.username)
"""
    manifest = pod_manifest("long", python(code), nodeName="refresh-node")
    await admin.create(PODS.path(namespace), manifest)
    pod = await wait_finished(admin, namespace, "long", within=40)
    assert phase(pod) == "Succeeded", refreshing.logs(namespace, "long")
    terminated = container_state(pod)["terminated"]
    assert terminated["message"] == f"system:serviceaccount:{namespace}:default"


async def test_secret_volume_below_var_run_secrets_is_mounted_at_its_path(
    admin: ApiClient, namespace: str, node: ProcessNode
) -> None:
    if node.agent.mounts is None:
        pytest.skip("this host cannot make private mount namespaces")
    await admin.create(f"/api/v1/namespaces/{namespace}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"password": "hunter2"}})  # fmt: skip
    manifest = pod_manifest(
        "reads-secret",
        ["sh", "-c", "cat /var/run/secrets/app/password > $TERMINATION_MESSAGE_PATH"],
        container={"volumeMounts": [{"name": "creds", "mountPath": "/var/run/secrets/app",
                                     "readOnly": True}]},
        volumes=[{"name": "creds", "secret": {"secretName": "creds"}}],
    )  # fmt: skip
    await admin.create(PODS.path(namespace), manifest)
    pod = await wait_finished(admin, namespace, "reads-secret")
    assert container_state(pod)["terminated"]["message"] == "hunter2"


async def test_without_private_mounts_kubeconfig_still_carries_the_pods_token(
    admin: ApiClient, namespace: str, extra_node: Callable[..., ProcessNode]
) -> None:
    fallback = extra_node("no-mounts-node", private_mounts=False)
    assert fallback.agent.mounts is None
    code = """
import os
from kubernetes import client, config
config.load_kube_config()
review = client.AuthenticationV1Api().create_self_subject_review(client.V1SelfSubjectReview())
open(os.environ["TERMINATION_MESSAGE_PATH"], "w").write(review.status.user_info.username)
"""
    manifest = pod_manifest("fallback", python(code), nodeName="no-mounts-node")
    await admin.create(PODS.path(namespace), manifest)
    pod = await wait_finished(admin, namespace, "fallback")
    assert phase(pod) == "Succeeded", fallback.logs(namespace, "fallback")
    terminated = container_state(pod)["terminated"]
    assert terminated["message"] == f"system:serviceaccount:{namespace}:default"
