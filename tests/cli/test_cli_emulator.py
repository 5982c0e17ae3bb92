"""The everyday commands in-process against the API emulator with the embedded operator running
(`demo.backend.LocalDemoBackend`): the emulator serves `pods/log` from the job runner's recorded
output, so this is where `logs` shows real stage output (the real tier's node serves no logs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from extraction_operator.api.constants import ANNOTATION_REDRIVE
from extraction_operator.cli import main
from extraction_operator.demo.backend import LocalDemoBackend
from extraction_operator.demo.manifests import RunRef

MERGE = (
    "import os, sys; attempt = os.environ['EXTRACTION_ATTEMPT']; "
    "print('merging, attempt', attempt); sys.exit(1 if attempt == '1' else 0)"
)
RUN: dict[str, Any] = {
    "apiVersion": "extraction.dev/v1alpha1",
    "kind": "ExtractionRun",
    "metadata": {"name": "flaky", "namespace": "default"},
    "spec": {
        "image": "local",
        "retry": {"limit": 0},
        "circuitBreakers": {"llm": {}},
        "stages": [
            {"name": "split", "command": ["python", "-c", "print('split into 2')"]},
            {
                "name": "extract",
                "dependsOn": ["split"],
                "shards": 2,
                "circuits": ["llm"],
                "command": ["python", "-c", "import os; print('shard', os.environ['SHARD_INDEX'])"],
            },
            {"name": "merge", "dependsOn": ["extract"], "command": ["python", "-c", MERGE]},
        ],
    },
}
Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDemoBackend]:
    with LocalDemoBackend(tmp_path_factory.mktemp("cli-emulator")) as started:
        yield started


def cli(backend: LocalDemoBackend, capsys: Capture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--kubeconfig", str(backend.kubeconfig)])
    out, err = capsys.readouterr()
    return code, out, err


def label(line: str) -> str:
    """The NODE cell of a tree line: connectors and name."""
    found = re.match(r"  (.*?)\s+(Succeeded|Failed|Running|Pending|Waiting|Skipped)\b", line)
    assert found, line
    return found.group(1)


def read_run(backend: LocalDemoBackend, name: str) -> dict[str, Any]:
    run = backend.read_runs([RunRef("default", name)])[f"default/{name}"]
    assert run is not None
    return dict(run)


@pytest.mark.timeout(240)
def test_watch_logs_and_redrive_of_a_run_that_fails_once(
    backend: LocalDemoBackend, capsys: Capture
) -> None:
    backend.apply(RUN)
    code, out, err = cli(backend, capsys, "watch", "flaky")
    assert (code, err) == (1, "")
    changes, _, tree = out.partition("\n\n")
    assert "default/flaky split: Succeeded (attempt 1, took" in changes
    assert "default/flaky merge: Failed (attempt 1, took" in changes
    assert changes.splitlines()[-1].split(" ", 1)[1].startswith("default/flaky  Failed  3/4")
    assert [label(line) for line in tree.splitlines()[4:]] == [
        "split",
        "└─ extract",
        "   ├─ extract[0]",
        "   ├─ extract[1]",
        "   └─ merge",
    ]
    assert "  circuit llm: closed" in tree
    assert "     ├─ extract[0]" in tree
    assert "[Error, exit 1] merging, attempt 1" in tree

    # One node's log, through pods/log, with no prefix (a failed attempt's pod is kept).
    code, out, err = cli(backend, capsys, "logs", "flaky", "merge")
    assert (code, out, err) == (0, "merging, attempt 1\n", "")
    # Every launched node, prefixed by its name, in DAG order. The pods of succeeded attempts
    # may have been cleaned up already: such a node is skipped with a note, not an error.
    code, out, err = cli(backend, capsys, "logs", "flaky")
    assert code == 0, err
    every = {
        "split": "[split] split into 2",
        "extract[0]": "[extract[0]] shard 0",
        "extract[1]": "[extract[1]] shard 1",
        "merge": "[merge] merging, attempt 1",
    }
    shown = out.splitlines()
    assert shown == [line for line in every.values() if line in shown]
    assert "[merge] merging, attempt 1" in shown
    for node, line in every.items():
        assert line in shown or f"(node {node} attempt 1) has no pods" in err, (node, err)

    code, out, err = cli(backend, capsys, "redrive", "flaky")
    assert code == 0, err
    assert out.startswith(f"extractionrun default/flaky re-driven ({ANNOTATION_REDRIVE}=")
    assert out.endswith("the operator resets 1 node(s) to Pending (merge) and resumes the run\n")
    code, out, err = cli(backend, capsys, "watch", "flaky")
    assert code == 0, (out, err)
    assert "default/flaky  Succeeded  4/4" in out

    # The current attempt is the default; an earlier one is found by its Job's labels.
    code, out, err = cli(backend, capsys, "logs", "flaky", "merge")
    assert (code, out) == (0, "merging, attempt 2\n") or "has no pods" in err, (out, err)
    assert cli(backend, capsys, "logs", "flaky", "merge", "--attempt", "1")[1] == (
        "merging, attempt 1\n"
    )
    code, _, err = cli(backend, capsys, "logs", "flaky", "merge", "--attempt", "3")
    assert (code, err) == (
        1,
        "extraction-operator logs: node merge of default/flaky has had 2 attempt(s); "
        "there is no attempt 3\n",
    )
    code, _, err = cli(backend, capsys, "logs", "flaky", "nope")
    assert code == 1
    assert "has no node 'nope' (its nodes: split, extract[0], extract[1], merge)" in err

    # Nothing failed any more: a re-drive is refused unless forced.
    code, out, err = cli(backend, capsys, "redrive", "flaky")
    assert (code, out) == (1, "")
    assert err == (
        "extraction-operator redrive: extractionrun default/flaky has nothing failed to "
        "re-drive (phase Succeeded, no Failed or Skipped node); pass --force to re-drive it "
        "anyway\n"
    )
    previous = read_run(backend, "flaky")["metadata"]["annotations"][ANNOTATION_REDRIVE]
    code, out, _ = cli(backend, capsys, "redrive", "flaky", "--force")
    assert code == 0
    assert "nothing had failed: --force" in out
    assert read_run(backend, "flaky")["metadata"]["annotations"][ANNOTATION_REDRIVE] != previous


def test_suspend_and_resume_patch_spec_suspend(backend: LocalDemoBackend, capsys: Capture) -> None:
    backend.apply({**RUN, "metadata": {"name": "paused", "namespace": "default"}})
    code, out, _ = cli(backend, capsys, "suspend", "paused")
    assert code == 0
    assert out.startswith("extractionrun default/paused suspended (spec.suspend=true)")
    assert read_run(backend, "paused")["spec"]["suspend"] is True
    assert cli(backend, capsys, "suspend", "paused")[1] == (
        "extractionrun default/paused is already suspended\n"
    )
    code, out, _ = cli(backend, capsys, "resume", "paused")
    assert out == (
        "extractionrun default/paused resumed (spec.suspend=false): the operator launches again\n"
    )
    assert read_run(backend, "paused")["spec"]["suspend"] is False
    assert cli(backend, capsys, "resume", "paused")[1] == (
        "extractionrun default/paused is not suspended\n"
    )


def test_get_shows_one_run_all_runs_or_the_object(
    backend: LocalDemoBackend, capsys: Capture
) -> None:
    backend.apply({**RUN, "metadata": {"name": "listed", "namespace": "default"}})
    code, out, _ = cli(backend, capsys, "get", "listed")
    assert code == 0
    assert out.splitlines()[0].startswith("default/listed  ")
    assert "  NODE " in out
    code, out, _ = cli(backend, capsys, "get")
    assert "default/listed  " in out
    assert "\n\ndefault/" in out  # several runs, a blank line between them
    code, out, _ = cli(backend, capsys, "get", "listed", "-o", "yaml")
    assert "kind: ExtractionRun" in out
    assert "name: listed" in out
    code, out, err = cli(backend, capsys, "get", "-n", "elsewhere")
    assert (code, out, err) == (0, "", "No extractionruns found in namespace elsewhere.\n")
    code, _, err = cli(backend, capsys, "watch", "missing")
    assert (code, err) == (
        1,
        'extraction-operator watch: extractionrun "missing" not found in namespace "default"\n',
    )


def test_logs_of_a_run_that_launched_nothing_say_so(
    backend: LocalDemoBackend, capsys: Capture
) -> None:
    body = {**RUN, "metadata": {"name": "slow", "namespace": "default"}}
    body["spec"] = {**RUN["spec"], "suspend": True}
    backend.apply(body)
    code, _, err = cli(backend, capsys, "logs", "slow")
    assert (code, err) == (
        1,
        "extraction-operator logs: extractionrun default/slow has launched nothing yet: no logs\n",
    )
    code, _, err = cli(backend, capsys, "logs", "slow", "split")
    assert code == 1
    assert err == (
        "extraction-operator logs: node split of default/slow has not been launched yet (Pending)\n"
    )
