"""Conformance of the API emulator with a real API server, one section per behaviour.

Every test runs against both backends, the emulator and a real cluster (see conftest), and must
pass unchanged on both: an assertion here is a claim about Kubernetes, which the real backend
checks, and about the emulator. Every test uses its own namespace and names, and the custom
resource is the suite's own `Gizmo`, so it is safe on a shared cluster.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL, KIND = "conformance.extraction.dev", "v1", "gizmos", "Gizmo"
GIZMOS = f"/apis/{GROUP}/{VERSION}"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

Body = Callable[..., dict[str, Any]]

# A real garbage collector works asynchronously, and learns of a new CRD's resource only at its
# next discovery resync (every 30 s), so waits on garbage collection allow for a resync or two.
GC_TIMEOUT = 90.0


def gizmos_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"{GIZMOS}/namespaces/{namespace}/{PLURAL}"
    return "/".join(p for p in (path, name, sub) if p)


def make_gizmo(cluster: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return result


def get_gizmo(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return result


def pod_body(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **metadata},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        },
    }


def job_body(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, **metadata},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }


def assert_status(body: Any, code: int, reason: str) -> None:
    """A proper `Status` error body, as clients parse it."""
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert body["message"]


# ------------------------------------------------------------------------------------ discovery


def test_version_and_core_discovery(cluster: Any) -> None:
    status, version, _ = cluster.request("GET", "/version")
    assert status == 200
    assert version["major"] == "1"
    assert version["gitVersion"]
    status, api, _ = cluster.request("GET", "/api")
    assert status == 200
    assert api["kind"] == "APIVersions"
    assert "v1" in api["versions"]
    status, core, _ = cluster.request("GET", "/api/v1")
    resources = {r["name"]: r for r in core["resources"]}
    assert resources["pods"]["namespaced"] is True
    assert resources["pods"]["kind"] == "Pod"
    assert {"create", "list", "watch", "patch"} <= set(resources["pods"]["verbs"])
    assert "pods/status" in resources
    assert resources["namespaces"]["namespaced"] is False
    assert "events" in resources


def test_group_discovery_lists_builtin_groups(cluster: Any) -> None:
    status, groups, _ = cluster.request("GET", "/apis")
    assert status == 200
    assert groups["kind"] == "APIGroupList"
    names = {g["name"] for g in groups["groups"]}
    assert {"batch", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io"} <= names
    status, batch, _ = cluster.request("GET", "/apis/batch/v1")
    resources = {r["name"]: r for r in batch["resources"]}
    assert resources["jobs"]["kind"] == "Job"
    assert resources["jobs"]["namespaced"] is True
    assert "jobs/status" in resources
    status, group, _ = cluster.request("GET", "/apis/batch")
    assert status == 200
    assert group["preferredVersion"]["version"] == "v1"


def test_the_system_namespaces_exist(cluster: Any) -> None:
    names = {n.metadata.name for n in cluster.core.list_namespace().items}
    assert {"default", "kube-node-lease", "kube-public", "kube-system"} <= names


def test_unknown_group_version_is_404(cluster: Any) -> None:
    status, _, _ = cluster.request("GET", "/apis/nope.example.com/v1")
    assert status == 404


# ------------------------------------------------------------------------------------ CRDs


def test_crd_is_established_and_discoverable(cluster: Any, crd: dict[str, Any]) -> None:
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    status, listing, _ = cluster.request("GET", GIZMOS)
    assert status == 200
    resources = {r["name"]: r for r in listing["resources"]}
    gizmos = resources[PLURAL]
    assert gizmos["kind"] == KIND
    assert gizmos["namespaced"] is True
    assert "gz" in gizmos["shortNames"]
    assert "conformance" in gizmos["categories"]
    assert f"{PLURAL}/status" in resources
    _, groups, _ = cluster.request("GET", "/apis")
    assert GROUP in {g["name"] for g in groups["groups"]}


def test_custom_resource_gets_schema_defaults_and_pruning(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    body = gizmo_body("defaults")
    body["spec"]["notInSchema"] = "dropped"
    created = make_gizmo(cluster, namespace, body)
    assert created["spec"]["parallelism"] == 4
    assert created["spec"]["failFast"] is True
    assert created["spec"]["stages"][0]["shards"] == 1
    assert "notInSchema" not in created["spec"]


def test_custom_resource_schema_rejects_non_object_spec(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    body = gizmo_body("bad-spec")
    body["spec"] = "oops"
    status, error, _ = cluster.request("POST", gizmos_path(namespace), body)
    assert status == 422
    assert_status(error, 422, "Invalid")
    assert "spec" in error["message"]


def test_custom_resource_schema_rejects_out_of_range_values(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    status, error, _ = cluster.request(
        "POST", gizmos_path(namespace), gizmo_body("bad", parallelism=0)
    )
    assert status == 422
    assert "spec.parallelism" in error["message"]


def test_table_output_uses_printer_columns(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    make_gizmo(cluster, namespace, gizmo_body("tabled"))
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "tabled",
        {"status": {"phase": "Running", "progress": "1/3"}},
    )
    status, table, _ = cluster.request("GET", gizmos_path(namespace), headers={"Accept": TABLE})
    assert status == 200
    assert table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Phase", "Progress", "Message", "Age"]
    message = next(c for c in table["columnDefinitions"] if c["name"] == "Message")
    assert message["priority"] == 1
    row = table["rows"][0]["cells"]
    assert row[:3] == ["tabled", "Running", "1/3"]


# ------------------------------------------------------------------------------------ metadata


def test_server_assigns_uid_timestamp_and_increasing_resource_versions(
    cluster: Any, namespace: str
) -> None:
    first = cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "one"}})
    second = cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "two"}})
    assert first.metadata.uid
    assert second.metadata.uid
    assert first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)


def test_generate_name(cluster: Any, namespace: str) -> None:
    created = cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"generateName": "gen-"}}
    )
    assert created.metadata.name.startswith("gen-")
    assert len(created.metadata.name) > 4
    assert created.metadata.generate_name == "gen-"


def test_generation_counts_spec_changes_only(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    created = make_gizmo(cluster, namespace, gizmo_body("gen"))
    assert created["metadata"]["generation"] == 1
    patch = cluster.custom.patch_namespaced_custom_object
    labelled = patch(GROUP, VERSION, namespace, PLURAL, "gen", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    status = cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "gen", {"status": {"phase": "Running"}}
    )
    assert status["metadata"]["generation"] == 1
    changed = patch(GROUP, VERSION, namespace, PLURAL, "gen", {"spec": {"parallelism": 2}})
    assert changed["metadata"]["generation"] == 2


# ------------------------------------------------------------------------------------ CRUD


def test_create_get_list_update_delete(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    created = make_gizmo(cluster, namespace, gizmo_body("crud"))
    fetched = get_gizmo(cluster, namespace, "crud")
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
    listed = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["crud"]
    assert listed["kind"] == f"{KIND}List"
    assert int(listed["metadata"]["resourceVersion"]) > 0
    fetched["spec"]["parallelism"] = 7
    updated = cluster.custom.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "crud", fetched
    )
    assert updated["spec"]["parallelism"] == 7
    assert int(updated["metadata"]["resourceVersion"]) > int(fetched["metadata"]["resourceVersion"])
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "crud")
    with pytest.raises(ApiException) as error:
        get_gizmo(cluster, namespace, "crud")
    assert error.value.status == 404


def test_duplicate_create_is_409_already_exists(cluster: Any, namespace: str) -> None:
    body = {"metadata": {"name": "dup"}}
    assert cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)[0] == 201
    status, error, _ = cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
    assert status == 409
    assert_status(error, 409, "AlreadyExists")
    assert error["details"]["name"] == "dup"
    assert error["details"]["kind"] == "configmaps"


def test_missing_object_is_404_not_found(cluster: Any, namespace: str) -> None:
    status, error, _ = cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/nope")
    assert status == 404
    assert_status(error, 404, "NotFound")
    assert error["details"]["name"] == "nope"


def test_stale_resource_version_is_409_conflict_for_put_and_patch(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    created = make_gizmo(cluster, namespace, gizmo_body("cas"))
    stale = created["metadata"]["resourceVersion"]
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "cas", {"spec": {"parallelism": 2}}
    )
    created["spec"]["parallelism"] = 3
    status, error, _ = cluster.request("PUT", gizmos_path(namespace, "cas"), created)
    assert status == 409
    assert_status(error, 409, "Conflict")
    patch = {"metadata": {"resourceVersion": stale}, "spec": {"parallelism": 5}}
    status, error, _ = cluster.request(
        "PATCH", gizmos_path(namespace, "cas"), patch, content_type=MERGE
    )
    assert status == 409
    assert_status(error, 409, "Conflict")
    assert get_gizmo(cluster, namespace, "cas")["spec"]["parallelism"] == 2


def test_create_in_missing_namespace_is_404(cluster: Any, unique: Callable[[str], str]) -> None:
    missing = unique("missing")
    status, error, _ = cluster.request(
        "POST", f"/api/v1/namespaces/{missing}/configmaps", {"metadata": {"name": "x"}}
    )
    assert status == 404
    assert_status(error, 404, "NotFound")


def test_deletecollection_by_label(
    cluster: Any, namespace: str, eventually: Callable[..., Any]
) -> None:
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        cluster.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"tier": tier}}}
        )
    cluster.core.delete_collection_namespaced_config_map(namespace, label_selector="tier=x")

    def only_c_left() -> bool:
        items = cluster.core.list_namespaced_config_map(namespace).items
        return [i.metadata.name for i in items if i.metadata.name in ("a", "b", "c")] == ["c"]

    eventually(only_c_left)


# ------------------------------------------------------------------------------------ patches


def test_merge_patch_null_deletes_and_lists_replace(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    body = gizmo_body("merge", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    body["metadata"]["labels"] = {"keep": "1", "drop": "1"}
    make_gizmo(cluster, namespace, body)
    patch = {"metadata": {"labels": {"drop": None}}, "spec": {"env": [{"name": "C", "value": "3"}]}}
    status, patched, _ = cluster.request(
        "PATCH", gizmos_path(namespace, "merge"), patch, content_type=MERGE
    )
    assert status == 200
    assert patched["metadata"]["labels"] == {"keep": "1"}
    assert patched["spec"]["env"] == [{"name": "C", "value": "3"}]


def test_json_patch_operations_and_failed_test_is_422(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    make_gizmo(cluster, namespace, gizmo_body("jp", env=[{"name": "A", "value": "1"}]))
    operations = [
        {"op": "test", "path": "/spec/parallelism", "value": 4},
        {"op": "replace", "path": "/spec/parallelism", "value": 6},
        {"op": "add", "path": "/spec/env/-", "value": {"name": "B", "value": "2"}},
        {"op": "remove", "path": "/spec/env/0"},
        {"op": "add", "path": "/metadata/annotations", "value": {"x/y": "z"}},
    ]
    status, patched, _ = cluster.request(
        "PATCH", gizmos_path(namespace, "jp"), operations, content_type=JSON_PATCH
    )
    assert status == 200, patched
    assert patched["spec"]["parallelism"] == 6
    assert patched["spec"]["env"] == [{"name": "B", "value": "2"}]
    assert patched["metadata"]["annotations"] == {"x/y": "z"}
    failing = [
        {"op": "test", "path": "/spec/parallelism", "value": 99},
        {"op": "replace", "path": "/spec/parallelism", "value": 1},
    ]
    status, error, _ = cluster.request(
        "PATCH", gizmos_path(namespace, "jp"), failing, content_type=JSON_PATCH
    )
    assert status == 422
    assert error["kind"] == "Status"
    assert error["code"] == 422
    assert get_gizmo(cluster, namespace, "jp")["spec"]["parallelism"] == 6


def test_strategic_merge_patch_merges_containers_by_name(cluster: Any, namespace: str) -> None:
    body = pod_body("smp")
    body["spec"]["containers"].append({"name": "side", "image": "busybox", "command": ["true"]})
    body["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    cluster.core.create_namespaced_pod(namespace, body)
    patch = {
        "metadata": {"labels": {"patched": "yes"}},
        "spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]},
    }
    status, patched, _ = cluster.request(
        "PATCH", f"/api/v1/namespaces/{namespace}/pods/smp", patch, content_type=STRATEGIC
    )
    # Containers of a pod are immutable except image; a real server rejects the env change...
    if status == 422:
        patch["spec"]["containers"] = [{"name": "side", "image": "busybox:1.36"}]
        status, patched, _ = cluster.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/pods/smp", patch, content_type=STRATEGIC
        )
    assert status == 200, patched
    assert patched["metadata"]["labels"] == {"patched": "yes"}
    names = [c["name"] for c in patched["spec"]["containers"]]
    assert names == ["main", "side"]


def test_strategic_merge_patch_on_job_labels_and_env(cluster: Any, namespace: str) -> None:
    body = job_body("smpjob")
    body["spec"]["suspend"] = True
    cluster.batch.create_namespaced_job(namespace, body)
    patch = {"metadata": {"labels": {"a": "1"}}, "spec": {"suspend": False}}
    status, patched, _ = cluster.request(
        "PATCH", f"/apis/batch/v1/namespaces/{namespace}/jobs/smpjob", patch, content_type=STRATEGIC
    )
    assert status == 200, patched
    assert patched["metadata"]["labels"]["a"] == "1"
    assert patched["spec"]["suspend"] is False
    assert patched["spec"]["template"]["spec"]["containers"][0]["name"] == "main"


def test_unknown_patch_content_type_is_415(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    make_gizmo(cluster, namespace, gizmo_body("ct"))
    status, _, _ = cluster.request(
        "PATCH", gizmos_path(namespace, "ct"), "{}", content_type="text/plain"
    )
    assert status == 415


def test_noop_write_keeps_resource_version_and_emits_no_event(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    created = make_gizmo(cluster, namespace, gizmo_body("noop"))
    rv = created["metadata"]["resourceVersion"]
    same = cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "noop", {"spec": {"parallelism": 4}}
    )
    assert same["metadata"]["resourceVersion"] == rv
    # A later real change is the first event a watch from `rv` sees.
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "noop", {"spec": {"parallelism": 5}}
    )
    events = cluster.watch(
        gizmos_path(namespace), [("resourceVersion", rv), ("timeoutSeconds", "1")], stop_after=1
    )
    assert [e["type"] for e in events] == ["MODIFIED"]
    assert events[0]["object"]["spec"]["parallelism"] == 5


# ------------------------------------------------------------------------------------ status


def test_status_subresource_separates_spec_and_status(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    body = gizmo_body("split")
    body["status"] = {"phase": "Succeeded"}
    created = make_gizmo(cluster, namespace, body)
    assert "status" not in created or created["status"].get("phase") != "Succeeded"
    main = cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "split", {"status": {"phase": "Failed"}}
    )
    assert (main.get("status") or {}).get("phase") != "Failed"
    status = cluster.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "split",
        {"spec": {"parallelism": 9}, "status": {"phase": "Running"}},
    )
    assert status["status"]["phase"] == "Running"
    assert status["spec"]["parallelism"] == 4
    assert status["metadata"]["generation"] == 1
    status_get = cluster.custom.get_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "split"
    )
    assert status_get["status"]["phase"] == "Running"


def test_job_status_subresource(cluster: Any, namespace: str) -> None:
    job = cluster.batch.create_namespaced_job(namespace, job_body("st"))
    assert job.spec.backoff_limit == 0
    assert job.spec.template.metadata.labels["job-name"] == "st"
    patched = cluster.batch.patch_namespaced_job(namespace=namespace, name="st",
                                                 body={"status": {"active": 5}})  # fmt: skip
    assert (patched.status.active or 0) != 5


# ------------------------------------------------------------------------------------ selectors


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web", ["a", "b"]),
        ("tier!=web", ["c", "d"]),
        ("tier in (web,db)", ["a", "b", "c"]),
        ("tier notin (web)", ["c", "d"]),
        ("tier", ["a", "b", "c"]),
        ("!tier", ["d"]),
        ("tier=web,env=prod", ["a"]),
    ],
)
def test_label_selectors(cluster: Any, namespace: str, selector: str, expected: list[str]) -> None:
    labels = {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "web"},
        "c": {"tier": "db"},
        "d": {"other": "x"},
    }
    for name, value in labels.items():
        cluster.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": value}}
        )
    found = cluster.core.list_namespaced_config_map(namespace, label_selector=selector)
    # Only the test's own: every namespace also holds a `kube-root-ca.crt` ConfigMap, unlabelled.
    assert sorted(i.metadata.name for i in found.items if i.metadata.name in labels) == expected


def test_malformed_label_selector_is_400(cluster: Any, namespace: str) -> None:
    status, error, _ = cluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps", query=[("labelSelector", "a in b")]
    )
    assert status == 400
    assert error["kind"] == "Status"


def test_field_selectors_name_and_namespace(
    cluster: Any, namespace: str, unique: Callable[[str], str]
) -> None:
    other = unique("xtest-other")
    cluster.core.create_namespace({"metadata": {"name": other}})
    try:
        for ns in (namespace, other):
            for name in ("x", "y"):
                cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
        by_name = cluster.core.list_namespaced_config_map(
            namespace, field_selector="metadata.name=x"
        )
        assert [i.metadata.name for i in by_name.items] == ["x"]
        not_name = cluster.core.list_namespaced_config_map(
            namespace, field_selector="metadata.name!=x"
        )
        assert [i.metadata.name for i in not_name.items if i.metadata.name in "xy"] == ["y"]
        everywhere = cluster.core.list_config_map_for_all_namespaces(
            field_selector=f"metadata.namespace={other},metadata.name=y"
        )
        assert [(i.metadata.namespace, i.metadata.name) for i in everywhere.items] == [(other, "y")]
    finally:
        cluster.core.delete_namespace(other)


def test_unsupported_field_selector_is_400(cluster: Any, namespace: str) -> None:
    status, error, _ = cluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps", query=[("fieldSelector", "data.x=1")]
    )
    assert status == 400
    assert error["kind"] == "Status"


def test_list_items_of_built_in_kinds_carry_no_type_but_custom_resources_do(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "typed"}})
    make_gizmo(cluster, namespace, gizmo_body("typed"))
    _, config_maps, _ = cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    assert (config_maps["apiVersion"], config_maps["kind"]) == ("v1", "ConfigMapList")
    assert config_maps["items"]
    assert not [i for i in config_maps["items"] if "kind" in i or "apiVersion" in i]
    _, gizmos, _ = cluster.request("GET", gizmos_path(namespace))
    assert [(i["apiVersion"], i["kind"]) for i in gizmos["items"]] == [(f"{GROUP}/{VERSION}", KIND)]
    # A single object and a watched one do carry their type.
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    _, one, _ = cluster.request("GET", f"{path}/typed")
    assert (one["apiVersion"], one["kind"]) == ("v1", "ConfigMap")
    query = [("fieldSelector", "metadata.name=typed"), ("timeoutSeconds", "1")]
    (watched,) = cluster.watch(path, query, stop_after=1)
    assert (watched["object"]["apiVersion"], watched["object"]["kind"]) == ("v1", "ConfigMap")


def test_list_limit_and_continue(cluster: Any, namespace: str) -> None:
    for index in range(5):
        cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": f"c{index}"}})
    first = cluster.core.list_namespaced_config_map(namespace, limit=2)
    assert len(first.items) == 2
    assert first.metadata._continue
    names = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = cluster.core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert [n for n in names if n.startswith("c")] == [f"c{i}" for i in range(5)]


# ------------------------------------------------------------------------------------ watch


def test_watch_from_list_version_sees_added_modified_deleted(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    listed = cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    rv = listed["metadata"]["resourceVersion"]
    make_gizmo(cluster, namespace, gizmo_body("w"))
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "w", {"spec": {"parallelism": 2}}
    )
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "w")
    events = cluster.watch(
        gizmos_path(namespace), [("resourceVersion", rv), ("timeoutSeconds", "2")], stop_after=3
    )
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(rv)


def test_watch_without_version_starts_with_current_objects(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    make_gizmo(cluster, namespace, gizmo_body("existing"))
    events = cluster.watch(gizmos_path(namespace), [("timeoutSeconds", "1")], stop_after=1)
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "existing"


def test_watch_streams_live_changes_with_selector(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = cluster.core.list_namespaced_config_map(namespace).metadata.resource_version
    collected: list[dict[str, Any]] = []

    def watch() -> None:
        collected.extend(
            cluster.watch(
                path,
                [("resourceVersion", rv), ("labelSelector", "app=x"), ("timeoutSeconds", "3")],
                stop_after=3,
            )
        )

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}})
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "m", "labels": {"app": "x"}}}
    )
    cluster.core.patch_namespaced_config_map("m", namespace, {"data": {"k": "v"}})
    # Relabelling out of the selector looks like a deletion to this watch.
    cluster.core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"app": "y"}}})
    thread.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in collected] == [
        ("ADDED", "m"),
        ("MODIFIED", "m"),
        ("DELETED", "m"),
    ]


def test_watch_resumes_from_resource_version(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    first = make_gizmo(cluster, namespace, gizmo_body("r1"))
    make_gizmo(cluster, namespace, gizmo_body("r2"))
    make_gizmo(cluster, namespace, gizmo_body("r3"))
    events = cluster.watch(
        gizmos_path(namespace),
        [("resourceVersion", first["metadata"]["resourceVersion"]), ("timeoutSeconds", "1")],
        stop_after=2,
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["r2", "r3"]


def test_watch_from_compacted_version_is_410_gone(cluster: Any, namespace: str) -> None:
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "old"}})
    if cluster.emulator is not None:
        cluster.emulator.store.compact()
    events = cluster.watch(
        f"/api/v1/namespaces/{namespace}/configmaps",
        [("resourceVersion", "1"), ("timeoutSeconds", "2")],
        stop_after=1,
    )
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["kind"] == "Status"
    assert events[0]["object"]["code"] == 410


def test_watch_bookmarks_and_timeout(cluster: Any, namespace: str) -> None:
    started = time.monotonic()
    events = cluster.watch(
        f"/api/v1/namespaces/{namespace}/configmaps",
        [("allowWatchBookmarks", "true"), ("timeoutSeconds", "2"), ("resourceVersion", "")],
        timeout=20,
    )
    assert time.monotonic() - started < 15  # the server closed the stream
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, events
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) > 0


def test_cluster_wide_watch_and_list_span_namespaces(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, unique: Callable[[str], str]
) -> None:
    other = unique("xtest-other")
    cluster.core.create_namespace({"metadata": {"name": other}})
    try:
        rv = cluster.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["metadata"][
            "resourceVersion"
        ]
        make_gizmo(cluster, namespace, gizmo_body("here"))
        make_gizmo(cluster, other, gizmo_body("there"))
        listed = cluster.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        names = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]}
        assert {(namespace, "here"), (other, "there")} <= names
        events = cluster.watch(
            f"{GIZMOS}/{PLURAL}", [("resourceVersion", rv), ("timeoutSeconds", "1")], stop_after=2
        )
        seen = {
            (e["object"]["metadata"]["namespace"], e["object"]["metadata"]["name"]) for e in events
        }
        assert seen == {(namespace, "here"), (other, "there")}
    finally:
        cluster.core.delete_namespace(other)


# ------------------------------------------------------------------------------------ finalizers


def test_finalizers_hold_deletion_until_removed(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, eventually: Callable[..., Any]
) -> None:
    body = gizmo_body("fin")
    body["metadata"]["finalizers"] = ["conformance.extraction.dev/test"]
    make_gizmo(cluster, namespace, body)
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "fin")
    held = get_gizmo(cluster, namespace, "fin")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["conformance.extraction.dev/test"]
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "fin", {"metadata": {"finalizers": None}}
    )

    def gone() -> bool:
        try:
            get_gizmo(cluster, namespace, "fin")
        except ApiException as error:
            return bool(error.status == 404)
        return False

    eventually(gone)


# ------------------------------------------------------------------------------------ GC


def _owner_ref(owner: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def test_deleting_an_owner_deletes_its_jobs_and_their_pods(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, eventually: Callable[..., Any]
) -> None:
    owner = make_gizmo(cluster, namespace, gizmo_body("owner"))
    job = cluster.api.sanitize_for_serialization(
        cluster.batch.create_namespaced_job(
            namespace, job_body("owner-a-1", ownerReferences=[_owner_ref(owner)])
        )
    )
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    cluster.core.create_namespaced_pod(
        namespace, pod_body("owner-a-1-pod", ownerReferences=[_owner_ref(job)])
    )
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "owner")

    def all_gone() -> bool:
        jobs = cluster.batch.list_namespaced_job(namespace).items
        pods = [
            p
            for p in cluster.core.list_namespaced_pod(namespace).items
            if p.metadata.name == "owner-a-1-pod" and not p.metadata.deletion_timestamp
        ]
        return not jobs and not pods

    eventually(all_gone, timeout=GC_TIMEOUT)


def test_orphan_propagation_keeps_dependents_without_owner(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, eventually: Callable[..., Any]
) -> None:
    owner = make_gizmo(cluster, namespace, gizmo_body("orphaner"))
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [_owner_ref(owner)]}}
    )
    cluster.custom.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "orphaner", propagation_policy="Orphan"
    )

    def orphaned() -> bool:
        config_map = cluster.core.read_namespaced_config_map("dependent", namespace)
        return not config_map.metadata.owner_references

    eventually(orphaned, timeout=GC_TIMEOUT)


def test_other_living_owner_keeps_dependent(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, eventually: Callable[..., Any]
) -> None:
    first = make_gizmo(cluster, namespace, gizmo_body("owner-1"))
    second = make_gizmo(cluster, namespace, gizmo_body("owner-2"))
    owners = [_owner_ref(first, controller=False), _owner_ref(second, controller=False)]
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "shared", "ownerReferences": owners}}
    )
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "owner-1")

    def one_owner_left() -> bool:
        refs = cluster.core.read_namespaced_config_map(
            "shared", namespace
        ).metadata.owner_references
        return [r.name for r in refs or []] == ["owner-2"]

    eventually(one_owner_left, timeout=GC_TIMEOUT)


# ------------------------------------------------------------------------------------ events


def test_core_and_events_k8s_io_events_are_one_resource(cluster: Any, namespace: str) -> None:
    involved = {"kind": "ConfigMap", "name": "thing", "namespace": namespace, "apiVersion": "v1"}
    cluster.core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "core-event"},
            "involvedObject": involved,
            "reason": "Testing",
            "message": "core v1 event",
            "type": "Normal",
            "count": 1,
        },
    )
    cluster.core.patch_namespaced_event("core-event", namespace, {"count": 2})
    core = cluster.core.list_namespaced_event(namespace, field_selector="involvedObject.name=thing")
    assert [(e.metadata.name, e.count) for e in core.items] == [("core-event", 2)]
    # The client re-encodes `eventTime` with `datetime.isoformat()`, which drops a zero fraction,
    # and a MicroTime needs six digits: so a time with microseconds.
    cluster.events.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "new-event"},
            "eventTime": "2026-01-01T00:00:00.123456Z",
            "reportingController": "extraction.dev/tests",
            "reportingInstance": "tests",
            "action": "Test",
            "reason": "Testing",
            "regarding": involved,
            "note": "events.k8s.io event",
            "type": "Normal",
        },
    )
    # Each Event is listed by both APIs, converted (raw: the client cannot parse a core Event
    # through events.k8s.io, which has no eventTime).
    path = f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"
    status, new, _ = cluster.request("GET", path, query=[("fieldSelector", "regarding.name=thing")])
    assert status == 200
    as_new = {e["metadata"]["name"]: e for e in new["items"]}
    assert new["apiVersion"] == "events.k8s.io/v1"
    assert sorted(as_new) == ["core-event", "new-event"]
    assert as_new["core-event"]["regarding"]["name"] == "thing"
    assert as_new["core-event"]["note"] == "core v1 event"
    assert as_new["core-event"]["deprecatedCount"] == 2
    _, old, _ = cluster.request("GET", f"/api/v1/namespaces/{namespace}/events")
    as_old = {e["metadata"]["name"]: e for e in old["items"]}
    assert as_old["new-event"]["involvedObject"]["name"] == "thing"
    assert as_old["new-event"]["message"] == "events.k8s.io event"
    assert as_old["new-event"]["reportingComponent"] == "extraction.dev/tests"
    assert as_old["new-event"]["eventTime"] == "2026-01-01T00:00:00.123456Z"


# ------------------------------------------------------------------------------------ misc kinds


def test_leases_support_compare_and_swap(cluster: Any, namespace: str) -> None:
    lease = cluster.coordination.create_namespaced_lease(
        namespace, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}
    )
    lease.spec.holder_identity = "b"
    updated = cluster.coordination.replace_namespaced_lease("leader", namespace, lease)
    assert updated.spec.holder_identity == "b"
    lease.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as error:
        cluster.coordination.replace_namespaced_lease("leader", namespace, lease)
    assert error.value.status == 409


def test_deleting_a_namespace_removes_its_objects(
    cluster: Any, unique: Callable[[str], str], eventually: Callable[..., Any]
) -> None:
    name = unique("xtest-doomed")
    cluster.core.create_namespace({"metadata": {"name": name}})
    cluster.core.create_namespaced_config_map(name, {"metadata": {"name": "inside"}})
    cluster.core.delete_namespace(name)

    def gone() -> bool:
        try:
            cluster.core.read_namespace(name)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    eventually(gone, timeout=60)


ROOT_CA = "kube-root-ca.crt"


def _root_ca(cluster: Any, namespace: str) -> Any:
    try:
        return cluster.core.read_namespaced_config_map(ROOT_CA, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return None


@pytest.mark.parametrize("which", ["new", "default"])
def test_every_namespace_gets_the_root_ca_config_map(
    cluster: Any, namespace: str, eventually: Callable[..., Any], which: str
) -> None:
    # Published by kube-controller-manager's root-ca-cert-publisher, for namespaces created
    # later and for those there from the start.
    published = eventually(lambda: _root_ca(cluster, namespace if which == "new" else "default"))
    assert list(published.data) == ["ca.crt"]
    certificate = x509.load_pem_x509_certificate(published.data["ca.crt"].encode())
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert published.metadata.annotations["kubernetes.io/description"].startswith(
        "Contains a CA bundle that can be used to verify the kube-apiserver"
    )


def test_root_ca_config_map_is_restored_when_deleted_or_changed(
    cluster: Any, namespace: str, eventually: Callable[..., Any]
) -> None:
    original = eventually(lambda: _root_ca(cluster, namespace))
    cluster.core.delete_namespaced_config_map(ROOT_CA, namespace)
    uid = original.metadata.uid
    again = eventually(lambda: (cm := _root_ca(cluster, namespace)) and cm.metadata.uid != uid)
    assert again
    tampered = {"metadata": {"labels": {"mine": "kept"}}, "data": {"ca.crt": "x", "extra": "y"}}
    cluster.core.patch_namespaced_config_map(ROOT_CA, namespace, tampered)

    def repaired() -> Any:
        current = _root_ca(cluster, namespace)
        return current if current is not None and current.data == original.data else None

    restored = eventually(repaired)
    assert restored.metadata.labels == {"mine": "kept"}


def test_invalid_names_and_label_values_are_422(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    status, error, _ = cluster.request("POST", path, {"metadata": {"name": "right[3]"}})
    assert status == 422
    assert error["reason"] == "Invalid"
    bad_label = {"metadata": {"name": "ok", "labels": {"stage": "right[3]"}}}
    status, error, _ = cluster.request("POST", path, bad_label)
    assert status == 422
    assert "metadata.labels" in error["message"]
    # Go's own messages, and several problems in brackets; a core kind has no group.
    both = {"metadata": {"name": "Bad_", "labels": {"a": "b c"}}}
    status, error, _ = cluster.request("POST", path, both)
    assert status == 422
    assert error["message"] == (
        'ConfigMap "Bad_" is invalid: [metadata.name: Invalid value: "Bad_": a lowercase RFC 1123 '
        "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), metadata.labels: "
        'Invalid value: "b c": a valid label must be an empty string or consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
    )
    assert sorted(error["details"]) == ["causes", "kind", "name"]
    assert [c["field"] for c in error["details"]["causes"]] == ["metadata.name", "metadata.labels"]


# ------------------------------------------------------------------------------------ pods


def test_bound_running_pod_is_deleted_gracefully(cluster: Any, namespace: str) -> None:
    server = cluster.server  # a real cluster's kubelet would finish the deletion itself
    body = pod_body("graceful")
    body["spec"]["nodeName"] = "local"
    cluster.core.create_namespaced_pod(namespace, body)
    cluster.core.delete_namespaced_pod("graceful", namespace)
    pod = cluster.core.read_namespaced_pod("graceful", namespace)
    assert pod.metadata.deletion_timestamp is not None
    assert pod.metadata.deletion_grace_period_seconds == 30
    cluster.core.delete_namespaced_pod("graceful", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException):
        cluster.core.read_namespaced_pod("graceful", namespace)
    assert server.request_log.records(resource="pods", verb="delete", status=200)


# ------------------------------------------------------------------------------------ faults


def test_fault_fails_next_matching_requests_with_500(cluster: Any, namespace: str) -> None:
    server = cluster.server
    server.faults.fail("list", "configmaps", namespace=namespace, times=2)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    assert cluster.request("GET", path)[0] == 500
    status, error, _ = cluster.request("GET", path)
    assert status == 500
    assert error["kind"] == "Status"
    assert error["reason"] == "InternalError"
    assert cluster.request("GET", path)[0] == 200
    assert cluster.request("GET", f"/api/v1/namespaces/{namespace}/secrets")[0] == 200


def test_fault_throttles_with_retry_after(cluster: Any, namespace: str) -> None:
    server = cluster.server
    server.faults.throttle("create", "configmaps", retry_after=3)
    status, error, headers = cluster.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "t"}}
    )
    assert status == 429
    assert error["reason"] == "TooManyRequests"
    assert headers.get("Retry-After") == "3"


def test_fault_hangs_until_released(cluster: Any, namespace: str) -> None:
    server = cluster.server
    server.faults.hang("get", "configmaps", name="held")
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "held"}})
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/held")[0]
        )
    )
    thread.start()
    time.sleep(0.3)
    assert not result  # still hanging
    server.faults.release()
    thread.join(5)
    assert result == [200]


def test_fault_hang_with_duration_and_delay(cluster: Any, namespace: str) -> None:
    server = cluster.server
    server.faults.hang("get", "configmaps", name="late", seconds=0.2)
    server.faults.delay(0.1, "get", "configmaps", name="late", times=1)
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "late"}})
    assert cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/late")[0] == 200
    rules = server.faults.rules
    assert not rules  # both used up
    records = server.request_log.records(name="late", verb="get")
    assert records
    assert records[-1].duration is not None
    assert records[-1].duration > 0


def test_fault_drops_open_watch_streams(cluster: Any, namespace: str) -> None:
    server = cluster.server
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = cluster.core.list_namespaced_config_map(namespace).metadata.resource_version
    result: list[list[dict[str, Any]]] = []
    thread = threading.Thread(
        target=lambda: result.append(
            cluster.watch(path, [("resourceVersion", rv), ("timeoutSeconds", "30")])
        )
    )
    thread.start()
    deadline = time.monotonic() + 5
    while server.store.watch_count == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.faults.drop_watches() >= 1
    thread.join(5)
    assert not thread.is_alive()
    assert result == [[]]


def test_fault_clear_removes_rules(cluster: Any, namespace: str) -> None:
    server = cluster.server
    server.faults.fail("list", "configmaps", times=None)
    server.faults.clear()
    assert cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")[0] == 200


def test_request_log_records_verb_resource_status_and_user_agent(
    cluster: Any, namespace: str
) -> None:
    server = cluster.server
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "logged"}})
    records = server.request_log.records(namespace=namespace, name=None, verb="create")
    assert records[-1].resource == "configmaps"
    assert records[-1].status == 201
    assert records[-1].user_agent == "extraction-conformance-tests"
    assert records[-1].method == "POST"
    assert records[-1].time > 0


# ------------------------------------------------------------------------------------ more CRDs


def _widget_crd(group: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "default": 3}},
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_lifecycle_serves_then_removes_a_cluster_scoped_resource(
    cluster: Any, unique: Callable[[str], str], eventually: Callable[..., Any]
) -> None:
    group = f"{unique('w')}.extraction.dev"
    crd = _widget_crd(group, "Cluster")
    cluster.apiext.create_custom_resource_definition(crd)
    try:

        def served() -> bool:
            return bool(cluster.request("GET", f"/apis/{group}/v1")[0] == 200)

        eventually(served)
        _, listing, _ = cluster.request("GET", f"/apis/{group}/v1")
        widgets = next(r for r in listing["resources"] if r["name"] == "widgets")
        assert widgets["namespaced"] is False
        assert "widgets/status" not in {r["name"] for r in listing["resources"]}

        def created() -> Any:
            widget = {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {},
            }
            status, body, _ = cluster.request("POST", f"/apis/{group}/v1/widgets", widget)
            return body if status == 201 else None

        widget = eventually(created)
        assert widget["spec"]["size"] == 3
        assert widget["apiVersion"] == f"{group}/v1"
        # Without a status subresource, status is written with the main resource.
        _, patched, _ = cluster.request(
            "PATCH", f"/apis/{group}/v1/widgets/w1", {"status": {"ok": True}}, content_type=MERGE
        )
        assert patched["status"] == {"ok": True}
        assert widget["metadata"]["generation"] == 1
        assert patched["metadata"]["generation"] == 2  # no status subresource: all but metadata
    finally:
        cluster.apiext.delete_custom_resource_definition(crd["metadata"]["name"])

    def unserved() -> bool:
        return bool(cluster.request("GET", f"/apis/{group}/v1/widgets")[0] == 404)

    eventually(unserved, timeout=30)


def test_strict_field_validation_rejects_unknown_fields(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    body = gizmo_body("strict")
    body["spec"]["typo"] = 1
    status, error, _ = cluster.request(
        "POST", gizmos_path(namespace), body, query=[("fieldValidation", "Strict")]
    )
    assert status == 400
    assert 'unknown field "spec.typo"' in error["message"]


def test_foreground_deletion_removes_dependents_first(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, eventually: Callable[..., Any]
) -> None:
    owner = make_gizmo(cluster, namespace, gizmo_body("fg"))
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "fg-child", "ownerReferences": [_owner_ref(owner)]}}
    )
    rv = owner["metadata"]["resourceVersion"]
    cluster.custom.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "fg", propagation_policy="Foreground"
    )

    def owner_gone() -> bool:
        try:
            get_gizmo(cluster, namespace, "fg")
        except ApiException as error:
            return bool(error.status == 404)
        return False

    eventually(owner_gone, timeout=GC_TIMEOUT)
    with pytest.raises(ApiException):
        cluster.core.read_namespaced_config_map("fg-child", namespace)
    events = cluster.watch(
        gizmos_path(namespace), [("resourceVersion", rv), ("timeoutSeconds", "1")], timeout=10
    )
    held = [e for e in events if e["type"] == "MODIFIED"]
    assert held
    assert "foregroundDeletion" in held[0]["object"]["metadata"]["finalizers"]
    assert events[-1]["type"] == "DELETED"


def test_watch_table_output_for_kubectl_get_watch(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    make_gizmo(cluster, namespace, gizmo_body("tw1"))
    make_gizmo(cluster, namespace, gizmo_body("tw2"))
    response = cluster._call(
        "GET",
        gizmos_path(namespace),
        [("watch", "true"), ("timeoutSeconds", "1")],
        {"Accept": TABLE},
        None,
        10,
    ).response
    lines = [line for line in response.data.decode().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert events[0]["object"]["kind"] == "Table"
    assert [c["name"] for c in events[0]["object"]["columnDefinitions"]][:2] == ["Name", "Phase"]
    assert events[1]["object"]["rows"][0]["cells"][0] == "tw2"


def test_server_dry_run_is_refused_rather_than_written(cluster: Any, namespace: str) -> None:
    cluster.server  # noqa: B018 - a real server supports dry runs
    status, error, _ = cluster.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "dry"}},
        query=[("dryRun", "All")],
    )
    assert status == 400
    assert "dryRun" in error["message"]
    assert cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/dry")[0] == 404


# ------------------------------------------------------------------------------------ CEL rules


def _needs_cel(cluster: Any) -> None:
    from extraction_operator.localcluster.apiserver import cel

    if cluster.emulator is not None and not cel.available():
        pytest.skip("cel-python is not installed: the emulator skips CRD validation rules")


def test_cel_rule_rejects_dependency_on_a_missing_stage(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    _needs_cel(cluster)
    body = gizmo_body("cel")
    body["spec"]["stages"].append({"name": "b", "dependsOn": ["nope"]})
    status, error, _ = cluster.request("POST", gizmos_path(namespace), body)
    assert status == 422
    assert "spec.stages" in error["message"]
    assert "every stages[].dependsOn entry must be the name of a stage" in error["message"]


def test_cel_transition_rule_keeps_stages_immutable(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    _needs_cel(cluster)
    make_gizmo(cluster, namespace, gizmo_body("frozen"))
    patch = {"spec": {"stages": [{"name": "other", "command": ["true"]}]}}
    status, error, _ = cluster.request(
        "PATCH", gizmos_path(namespace, "frozen"), patch, content_type=MERGE
    )
    assert status == 422
    assert "spec.stages is immutable" in error["message"]
    # Other spec fields stay editable, and unchanged stages are not re-validated.
    ok = cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "frozen", {"spec": {"parallelism": 3}}
    )
    assert ok["spec"]["parallelism"] == 3


# ------------------------------------------------------------------------------------ pod logs


def test_pod_log_subresource_serves_the_attached_log_source(cluster: Any, namespace: str) -> None:
    server = cluster.server  # a real cluster's kubelet serves logs of pods that really ran
    cluster.core.create_namespaced_pod(namespace, pod_body("logged"))
    path = f"/api/v1/namespaces/{namespace}/pods/logged/log"
    status, error, _ = cluster.request("GET", path)
    assert status == 400
    assert "waiting to start" in error["message"]
    server.server.pod_logs = lambda ns, pod, container: f"{ns}/{pod}/{container}\nline 2\n"
    try:
        text = cluster.core.read_namespaced_pod_log("logged", namespace)
        assert text == f"{namespace}/logged/main\nline 2\n"
        tail = cluster.core.read_namespaced_pod_log("logged", namespace, tail_lines=1)
        assert tail == "line 2\n"
        status, error, _ = cluster.request("GET", path, query=[("container", "nope")])
        assert status == 400
        assert "main" in error["message"]
    finally:
        server.server.pod_logs = None
