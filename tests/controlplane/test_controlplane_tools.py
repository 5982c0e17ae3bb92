"""The Go tools the tests use: kstatus (cli-utils' status library) and Prometheus' promtool.

The kstatus cases are the library's own rules (a Deployment's rollout, the standard
Ready/Reconciling/Stalled conditions, observedGeneration), so they pass only when the binary
really is `sigs.k8s.io/cli-utils/pkg/kstatus/status`. The build itself is cached like the control
plane's (`make test` builds it first); a cold build takes two minutes on an idle machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.controlplane import build as cpbuild
from extraction_operator.controlplane import tools

# A cold build (2 min idle, 10 min on a busy two-core machine) may happen inside the first test;
# every call below has its own short timeout, so this limit only ever waits for Go.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    return tools.build_tools()


def _deployment(*, generation: int, observed: int, updated: int, available: int) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team", "generation": generation},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": observed,
            "replicas": 3,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [
                {"type": "Available", "status": "True" if available == 3 else "False"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        },
    }


def _run(*, generation: int, observed: int, conditions: list[dict[str, str]]) -> Any:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": "nightly", "namespace": "team", "generation": generation},
        "spec": {},
        "status": {"observedGeneration": observed, "conditions": conditions},
    }


def _cond(kind: str, status: str = "True", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": kind, "message": message}


def _kstatus(bin_dir: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "kstatus")], input=stdin, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_tool_path_names_the_built_binaries(bin_dir: Path) -> None:
    for name in tools.TOOLS:
        path = tools.tool_path(name)
        assert path == bin_dir / name
        assert path.is_file()
    with pytest.raises(ValueError, match="unknown tool"):
        tools.tool_path("kubectl")


def test_a_second_build_is_the_cached_one(bin_dir: Path) -> None:
    assert tools.build_tools() == bin_dir
    assert bin_dir.parent.parent == tools.default_cache_root()


def test_the_tools_module_leaves_the_control_plane_cache_key_alone() -> None:
    module = cpbuild.default_module_dir()
    sources = cpbuild.module_sources(module)
    assert (module / "go.mod") in sources
    assert not any(tools.default_tools_dir() in source.parents for source in sources)
    assert any(s.is_relative_to(module / "cmd") for s in sources)


def test_a_nested_module_does_not_move_the_control_plane_cache_key(tmp_path: Path) -> None:
    module = tmp_path / "controlplane"
    (module / "cmd" / "etcd").mkdir(parents=True)
    (module / "go.mod").write_text("module x\n\ngo 1.26.0\n")
    (module / "go.sum").write_text("")
    (module / "cmd" / "etcd" / "main.go").write_text("package main\nfunc main() {}\n")
    go = cpbuild.find_go()
    env = cpbuild._build_env(go)
    before = cpbuild._cache_key(module, go, env)
    nested = module / "tools" / "cmd" / "kstatus"
    nested.mkdir(parents=True)
    (module / "tools" / "go.mod").write_text("module x/tools\n\ngo 1.26.0\n")
    (nested / "main.go").write_text("package main\nfunc main() {}\n")
    assert cpbuild._cache_key(module, go, env) == before
    (module / "cmd" / "etcd" / "extra.go").write_text("package main\n")
    assert cpbuild._cache_key(module, go, env) != before


def test_the_tools_cache_key_follows_the_sources_and_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "tools"
    (module / "cmd" / "kstatus").mkdir(parents=True)
    (module / "go.mod").write_text(f"module x\n\nrequire {tools.PROMETHEUS_MODULE} v0.316.0\n")
    (module / "go.sum").write_text("")
    (module / "cmd" / "kstatus" / "main.go").write_text("package main\nfunc main() {}\n")
    go = cpbuild.find_go()
    env = cpbuild._build_env(go)
    first = tools._cache_key(module, go, env)
    assert tools._cache_key(module, go, env) == first
    monkeypatch.setattr(tools, "BUILD_TAGS", ("remove_all_sd", "enable_kubernetes_sd"))
    assert tools._cache_key(module, go, env) != first
    monkeypatch.undo()
    (module / "cmd" / "kstatus" / "main.go").write_text("package main\nfunc main() { }\n")
    assert tools._cache_key(module, go, env) != first


def test_the_prometheus_release_is_read_from_the_module_version(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text(f"require (\n\t{tools.PROMETHEUS_MODULE} v0.316.0 // x\n)\n")
    assert tools.prometheus_version(tmp_path) == "3.16.0"
    (tmp_path / "go.mod").write_text("module x\n")
    with pytest.raises(cpbuild.BuildError, match="does not require"):
        tools.prometheus_version(tmp_path)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_deployment(generation=2, observed=2, updated=3, available=3), "Current"),
        (_deployment(generation=2, observed=2, updated=1, available=3), "InProgress"),
        (_deployment(generation=3, observed=2, updated=3, available=3), "InProgress"),
        (_run(generation=4, observed=4, conditions=[_cond("Ready")]), "Current"),
        (_run(generation=4, observed=4, conditions=[_cond("Stalled", message="bad")]), "Failed"),
        (_run(generation=4, observed=4, conditions=[_cond("Reconciling")]), "InProgress"),
        (_run(generation=5, observed=4, conditions=[_cond("Ready")]), "InProgress"),
    ],
    ids=[
        "deployment-rolled-out",
        "deployment-progressing",
        "deployment-stale-generation",
        "cr-ready",
        "cr-stalled",
        "cr-reconciling",
        "cr-stale-generation",
    ],
)
def test_kstatus_judges_objects_like_the_library(
    bin_dir: Path, obj: dict[str, Any], expected: str
) -> None:
    [verdict] = tools.kstatus([obj])
    assert verdict["status"] == expected, verdict
    assert verdict["name"] == obj["metadata"]["name"]
    assert verdict["kind"] == obj["kind"]


def test_kstatus_reads_a_list_and_a_stream_and_explains_itself(bin_dir: Path) -> None:
    ready = _run(generation=1, observed=1, conditions=[_cond("Ready")])
    stalled = _run(generation=1, observed=1, conditions=[_cond("Stalled", message="quota gone")])
    stalled["metadata"]["name"] = "broken"
    listed = {"apiVersion": "v1", "kind": "List", "items": [ready, stalled]}
    verdicts = tools.kstatus([listed, ready])
    assert [(v["name"], v["status"]) for v in verdicts] == [
        ("nightly", "Current"),
        ("broken", "Failed"),
        ("nightly", "Current"),
    ]
    assert "quota gone" in verdicts[1]["message"]
    assert verdicts[1]["namespace"] == "team"


@pytest.mark.parametrize(
    ("stdin", "complaint"),
    [
        ('{"kind": "Pod", "metadata": ', "not valid JSON"),
        ("this is not json", "not valid JSON"),
        ('{"metadata": {"name": "x"}}', "not a Kubernetes object"),
        ("", "no input"),
    ],
)
def test_kstatus_refuses_unparseable_input(bin_dir: Path, stdin: str, complaint: str) -> None:
    result = _kstatus(bin_dir, stdin)
    assert result.returncode != 0
    assert complaint in result.stderr
    assert result.stdout == ""


def test_promtool_is_prometheus_own(bin_dir: Path) -> None:
    result = subprocess.run([str(bin_dir / "promtool"), "--version"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert f"promtool, version {tools.prometheus_version(tools.default_tools_dir())}" in text
    assert "remove_all_sd" in text


VALID_RULES = """groups:
  - name: extraction
    rules:
      - record: job:extraction_runs:rate5m
        expr: sum by (job) (rate(extraction_runs_total[5m]))
      - alert: ExtractionRunsFailing
        expr: rate(extraction_run_failures_total[5m]) > 0
        for: 10m
        labels: {severity: warning}
        annotations: {summary: "runs fail"}
"""
INVALID_RULES = """groups:
  - name: extraction
    rules:
      - alert: Broken
        expr: sum by (job (rate(extraction_runs_total[5m]))
"""


def _check_rules(bin_dir: Path, tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    return subprocess.run([str(bin_dir / "promtool"), "check", "rules", str(rules)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_promtool_accepts_valid_rules(bin_dir: Path, tmp_path: Path) -> None:
    result = _check_rules(bin_dir, tmp_path, VALID_RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout + result.stderr


def test_promtool_rejects_invalid_rules_with_its_own_error(bin_dir: Path, tmp_path: Path) -> None:
    result = _check_rules(bin_dir, tmp_path, INVALID_RULES)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "FAILED" in output
    assert "parse error" in output
