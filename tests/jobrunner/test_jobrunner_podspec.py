"""Unit tests of turning a pod's first container into a local process launch."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.localcluster.podspec import (
    PodConfigError,
    PodPaths,
    PodSpecError,
    build_launch,
    container_env,
    decode_source,
    expand,
    field_value,
    host_mounts,
    referenced_sources,
    rewrite_path,
)

JSON = dict[str, Any]


def make_pod(container: JSON, **spec: Any) -> JSON:
    return {
        "metadata": {
            "name": "job-abcde",
            "namespace": "team",
            "uid": "uid-1",
            "labels": {"app": "x", "job-name": "job"},
            "annotations": {"note": "hello"},
        },
        "spec": {"containers": [{"name": "main", **container}], **spec},
    }


@pytest.fixture
def paths(tmp_path: Path) -> PodPaths:
    return PodPaths(root=tmp_path / "pods" / "team" / "job-abcde", volumes_root=tmp_path / "vol")


def test_fieldrefs_resolve_like_the_downward_api() -> None:
    pod = make_pod({}, nodeName="n1", serviceAccountName="stage")
    assert field_value(pod, "metadata.name", "node") == "job-abcde"
    assert field_value(pod, "metadata.namespace", "node") == "team"
    assert field_value(pod, "metadata.uid", "node") == "uid-1"
    assert field_value(pod, "metadata.labels['app']", "node") == "x"
    assert field_value(pod, "metadata.annotations['note']", "node") == "hello"
    assert field_value(pod, "metadata.labels['missing']", "node") == ""
    assert field_value(pod, "spec.nodeName", "node") == "n1"
    assert field_value(make_pod({}), "spec.nodeName", "node") == "node"
    assert field_value(pod, "spec.serviceAccountName", "node") == "stage"
    assert field_value(pod, "status.podIP", "node") == "127.0.0.1"
    with pytest.raises(PodConfigError, match=r"status\.phase"):
        field_value(pod, "status.phase", "node")


def test_env_literals_expand_earlier_variables_and_keep_unknown_references() -> None:
    env = {"A": "1"}
    assert expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_secret_and_configmap_refs_read_the_given_sources() -> None:
    container = {
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
            {"name": "BOTH", "value": "$(TOKEN)/$(MODE)"},
        ],
        "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "CM_"}],
    }
    assert referenced_sources(container) == {
        ("secret", "s"),
        ("configmap", "c"),
        ("secret", "gone"),
    }
    sources = {("secret", "s"): {"token": "t0k"}, ("configmap", "c"): {"mode": "fast"}}
    env = container_env(make_pod(container), container, sources, "node")
    assert env == {"CM_mode": "fast", "TOKEN": "t0k", "MODE": "fast", "BOTH": "t0k/fast"}


def test_missing_secret_or_key_is_a_config_error_naming_it() -> None:
    ref = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}
    container = {"env": [ref]}
    with pytest.raises(PodConfigError, match='secret "s" not found'):
        container_env(make_pod(container), container, {("secret", "s"): None}, "node")
    with pytest.raises(PodConfigError, match='key token in Secret "s"'):
        container_env(make_pod(container), container, {("secret", "s"): {}}, "node")


def test_secret_data_is_base64_and_configmap_data_is_plain() -> None:
    secret = {"data": {"k": base64.b64encode(b"v\xc3\xa9").decode(), "bad": "!!"}}
    assert decode_source("secret", secret) == {"k": "vé"}
    assert decode_source("configmap", {"data": {"k": "v"}}) == {"k": "v"}


def test_volumes_map_to_host_directories_and_paths_are_rewritten(paths: PodPaths) -> None:
    container = {
        "volumeMounts": [
            {"name": "ws", "mountPath": "/workspace"},
            {"name": "scratch", "mountPath": "/workspace/tmp/"},
            {"name": "ws", "mountPath": "/data", "subPath": "inputs"},
        ]
    }
    pod = make_pod(
        container,
        volumes=[
            {"name": "ws", "persistentVolumeClaim": {"claimName": "corpus"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    mounts = host_mounts(pod, container, paths)
    pvc = paths.volumes_root / "team" / "pvc-corpus"
    assert rewrite_path("/workspace", mounts) == str(pvc)
    assert rewrite_path("/workspace/a/b", mounts) == f"{pvc}/a/b"
    assert rewrite_path("/workspace/tmp/x", mounts) == f"{paths.volume('scratch')}/x"
    assert rewrite_path("/data/f", mounts) == f"{pvc}/inputs/f"
    assert rewrite_path("/workspaces", mounts) == "/workspaces"


def test_a_host_program_under_a_mount_path_keeps_its_path(paths: PodPaths, tmp_path: Path) -> None:
    """The operator's Deployment mounts an emptyDir at /tmp; run from a checkout under /tmp, its
    console script must still run from the host, while its arguments are rewritten as before."""
    program = tmp_path / "bin" / "tool"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    mount_path = str(tmp_path)
    container = {
        "command": [str(program), f"{mount_path}/out"],
        "volumeMounts": [{"name": "scratch", "mountPath": mount_path}],
    }
    pod = make_pod(container, volumes=[{"name": "scratch", "emptyDir": {}}])
    launch = build_launch(pod, paths, {}, node_name="n", base_env={})
    assert launch.argv[0] == str(program)
    assert launch.argv[1] == f"{paths.volume('scratch')}/out"
    missing = make_pod(
        {**container, "command": [f"{mount_path}/run.sh"]},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    launched = build_launch(missing, paths, {}, node_name="n", base_env={})
    assert launched.argv[0] == f"{paths.volume('scratch')}/run.sh"


def test_mount_of_an_undeclared_volume_is_a_spec_error(paths: PodPaths) -> None:
    container = {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}
    with pytest.raises(PodSpecError, match="no volume named 'nope'"):
        host_mounts(make_pod(container), container, paths)


def test_launch_builds_argv_env_and_cwd(paths: PodPaths) -> None:
    container = {
        "command": ["python", "-c"],
        "args": ["print(1)", "$(EXTRACTION_WORKSPACE)/out", "/workspace/in"],
        "env": [
            {"name": "EXTRACTION_WORKSPACE", "value": "/workspace"},
            {"name": "KUBECONFIG", "value": "/should/be/overridden"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}],
        "workingDir": "/workspace/sub",
    }
    pod = make_pod(container, volumes=[{"name": "ws", "persistentVolumeClaim": {"claimName": "c"}}])
    base = {"PATH": "/usr/bin", "HOME": "/root", "SECRET_OF_RUNNER": "no"}
    launch = build_launch(pod, paths, {}, node_name="node", base_env=base)
    pvc = str(paths.volumes_root / "team" / "pvc-c")
    assert launch.argv == [sys.executable, "-c", "print(1)", f"{pvc}/out", f"{pvc}/in"]
    assert launch.env["EXTRACTION_WORKSPACE"] == pvc
    assert launch.env["POD"] == "job-abcde"
    assert launch.env["HOSTNAME"] == "job-abcde"
    assert launch.env["PATH"] == f"{Path(sys.executable).parent}:/usr/bin"
    assert "SECRET_OF_RUNNER" not in launch.env
    assert launch.env["KUBECONFIG"] == str(paths.kubeconfig)
    assert launch.env["TERMINATION_MESSAGE_PATH"] == str(paths.termination_message)
    assert launch.cwd == Path(pvc) / "sub"
    assert launch.cwd in launch.host_dirs


def test_launch_without_command_fails_clearly(paths: PodPaths) -> None:
    with pytest.raises(PodSpecError, match=r"set spec\.containers\[0\]\.command"):
        build_launch(make_pod({"image": "x"}), paths, {}, node_name="n", base_env={})
    with pytest.raises(PodSpecError, match="no container"):
        build_launch({"spec": {"containers": []}}, paths, {}, node_name="n", base_env={})


def test_working_dir_outside_mounts_is_the_pod_directory(paths: PodPaths) -> None:
    pod = make_pod({"command": ["true"], "workingDir": "/app"})
    launch = build_launch(pod, paths, {}, node_name="n", base_env={})
    assert launch.cwd == paths.workdir
