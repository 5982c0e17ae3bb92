"""The everyday CLI on the real tier, as a person types it: the console scripts in subprocesses
against the operator installed from `manifests/` (`installed_operator`), with KUBECONFIG set.

A small pipeline (a stage, a fan-out guarded by a circuit, a stage that fails on its first
attempt with no retry) is followed by `watch` to its failure, re-driven, and watched to success;
`get` and `kubectl xrun get` (kubectl finding the plugin `kubectl-xrun` on PATH) show it; another
run is suspended mid-flight and resumed. `logs` on this tier's node fails with a clear message:
the process node serves no kubelet API, so the API server cannot fetch a pod's log (on an
external cluster, `EXTRACTION_TEST_KUBECONFIG`, the log itself is checked instead).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from cluster_kit import InstalledOperator, Kubectl, kubectl_binary, wait_for

NAMESPACE = "default"
BIN = Path(sys.executable).parent
MERGE = (
    "import os, sys; attempt = os.environ['EXTRACTION_ATTEMPT']; "
    "print('merging, attempt', attempt); sys.exit(1 if attempt == '1' else 0)"
)


def _env(real_cluster: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    env["KUBECONFIG"] = str(real_cluster.admin_kubeconfig)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def xrun(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`extraction-operator ARGS -n default`, as typed in a shell (stdout is a pipe: no TTY)."""
    return subprocess.run(
        [str(BIN / "extraction-operator"), *args, "-n", NAMESPACE],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _run(name: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "python:3.11-slim",
            "retry": {"limit": 0},
            "circuitBreakers": {"llm": {"failureThreshold": 3}},
            "stages": stages,
        },
    }


def _label(line: str) -> str:
    found = re.match(r"  (.*?)\s+(Succeeded|Failed|Running|Pending|Waiting|Skipped)\b", line)
    assert found, line
    return found.group(1)


@pytest.mark.timeout(300)
def test_watch_logs_redrive_and_the_kubectl_plugin_on_a_running_pipeline(
    kube: Kubectl, installed_operator: InstalledOperator, real_cluster: Any
) -> None:
    env = _env(real_cluster)
    name = f"cli-{uuid.uuid4().hex[:6]}"
    split = "import time; print('split'); time.sleep(1)"
    shard = "import os; print('shard', os.environ['SHARD_INDEX'])"
    kube.apply(
        _run(
            name,
            [
                {"name": "split", "command": ["python", "-c", split]},
                {
                    "name": "extract",
                    "dependsOn": ["split"],
                    "shards": 2,
                    "circuits": ["llm"],
                    "command": ["python", "-c", shard],
                },
                {"name": "merge", "dependsOn": ["extract"], "command": ["python", "-c", MERGE]},
            ],
        )
    )
    try:
        shown = xrun(env, "get", name)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"{NAMESPACE}/{name}  ")

        watched = xrun(env, "watch", name, timeout=180)
        assert watched.returncode == 1, (watched.stdout, watched.stderr)  # the run Failed
        assert "Traceback" not in watched.stderr
        changes, _, tree = watched.stdout.partition("\n\n")
        for expected in ("split: Succeeded", "extract[1]: Succeeded", "merge: Failed"):
            assert f"{NAMESPACE}/{name} {expected} (attempt 1, took " in changes, changes
        assert f"{NAMESPACE}/{name}  Failed  3/4" in changes.splitlines()[-1]
        lines = tree.splitlines()
        assert lines[0].startswith(f"{NAMESPACE}/{name}  Failed  3/4  ")
        assert "  circuit llm: closed" in lines
        assert [_label(line) for line in lines[lines.index("  circuit llm: closed") + 2 :]] == [
            "split",
            "└─ extract",
            "   ├─ extract[0]",
            "   ├─ extract[1]",
            "   └─ merge",
        ]
        assert lines[-1].endswith("[Error, exit 1] merging, attempt 1")

        logs = xrun(env, "logs", name, "merge")
        assert "Traceback" not in logs.stderr
        if real_cluster.own:
            # The process node has no kubelet API: the API server cannot fetch the log.
            assert logs.returncode == 1
            assert re.fullmatch(
                rf"extraction-operator logs: the node serving pod {name}-merge-1-\w+ "
                r"\(process-node\) does not serve logs: .+ \(\d{3} .*\)\n",
                logs.stderr,
            ), logs.stderr
        else:
            assert (logs.returncode, logs.stdout) == (0, "merging, attempt 1\n"), logs.stderr

        redriven = xrun(env, "redrive", name)
        assert redriven.returncode == 0, redriven.stderr
        assert redriven.stdout.startswith(f"extractionrun {NAMESPACE}/{name} re-driven (")
        assert "resets 1 node(s) to Pending (merge)" in redriven.stdout
        # `watch` right after `redrive` follows the re-driven run to its new end.
        watched = xrun(env, "watch", name, timeout=180)
        assert watched.returncode == 0, (watched.stdout, watched.stderr)
        assert f"{NAMESPACE}/{name} merge: Succeeded (attempt 2, took " in watched.stdout
        run = kube.json("get", "xrun", name, "-n", NAMESPACE)
        assert run["status"]["phase"] == "Succeeded"
        assert run["status"]["nodes"]["merge"]["attempts"] == 2

        refused = xrun(env, "redrive", name)
        assert refused.returncode == 1
        assert "has nothing failed to re-drive (phase Succeeded" in refused.stderr

        # kubectl finds `kubectl-xrun` on PATH and hands it the words after `xrun`.
        plugin = subprocess.run(
            [kubectl_binary(), "xrun", "get", name, "-n", NAMESPACE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert plugin.returncode == 0, plugin.stderr
        direct = xrun(env, "get", name).stdout
        assert plugin.stdout.splitlines()[0] == direct.splitlines()[0]
        assert plugin.stdout.splitlines()[0].startswith(f"{NAMESPACE}/{name}  Succeeded  4/4")
        missing = subprocess.run(
            [kubectl_binary(), "xrun", "get", "no-such-run", "-n", NAMESPACE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert missing.returncode == 1
        assert missing.stderr.startswith('kubectl xrun get: extractionrun "no-such-run" not found')
    finally:
        kube.run("delete", "xrun", name, "-n", NAMESPACE, "--wait=false", check=False)


@pytest.mark.timeout(300)
def test_suspend_and_resume_a_run_in_flight(
    kube: Kubectl, installed_operator: InstalledOperator, real_cluster: Any
) -> None:
    env = _env(real_cluster)
    name = f"cli-{uuid.uuid4().hex[:6]}"
    kube.apply(
        _run(
            name,
            [
                {"name": "first", "command": ["python", "-c", "import time; time.sleep(6)"]},
                {"name": "second", "dependsOn": ["first"], "command": ["python", "-c", "pass"]},
            ],
        )
    )

    def run() -> dict[str, Any]:
        return kube.json("get", "xrun", name, "-n", NAMESPACE)

    def node(key: str) -> dict[str, Any]:
        nodes: dict[str, Any] = run().get("status", {}).get("nodes", {})
        return nodes.get(key) or {}

    try:
        wait_for("the first stage to run", lambda: node("first").get("phase") == "Running", 60)
        suspended = xrun(env, "suspend", name)
        assert suspended.returncode == 0, suspended.stderr
        assert suspended.stdout == (
            f"extractionrun {NAMESPACE}/{name} suspended (spec.suspend=true): the operator "
            "launches nothing new; 1 running Job(s) finish\n"
        )
        assert run()["spec"]["suspend"] is True
        wait_for("phase Suspended", lambda: run()["status"].get("phase") == "Suspended", 30)
        # The running Job finishes; nothing new is launched while suspended.
        wait_for("the first stage to end", lambda: node("first").get("phase") == "Succeeded", 60)
        shown = xrun(env, "get", name)
        assert shown.stdout.startswith(f"{NAMESPACE}/{name}  Suspended")
        assert "suspended (spec.suspend): nothing new is launched" in shown.stdout
        assert node("second").get("attempts", 0) == 0

        resumed = xrun(env, "resume", name)
        assert resumed.returncode == 0, resumed.stderr
        assert run()["spec"]["suspend"] is False
        watched = xrun(env, "watch", name, timeout=120)
        assert watched.returncode == 0, (watched.stdout, watched.stderr)
        assert f"{NAMESPACE}/{name} second: Succeeded (attempt 1, took " in watched.stdout
    finally:
        kube.run("delete", "xrun", name, "-n", NAMESPACE, "--wait=false", check=False)
