"""The demo's flow (apply, follow, report, exit code) against a scripted backend."""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from extraction_operator.demo.follow import follow_runs
from extraction_operator.demo.main import (
    EXIT_INTERRUPTED,
    demonstrate,
    logs_to_file,
    run_demo,
    sigterm_as_interrupt,
)
from extraction_operator.demo.manifests import RunRef, load_manifests
from extraction_operator.demo.summary import EXIT_FAILED, EXIT_SUCCEEDED, EXIT_TIMED_OUT

Factory = Callable[..., dict[str, Any]]


class ScriptedBackend:
    """Returns the given snapshots one per read, then the last one forever."""

    def __init__(
        self, snapshots: Sequence[list[dict[str, Any]] | Exception], outputs: Path | None = None
    ):
        self.snapshots = list(snapshots)
        self.applied: list[Mapping[str, Any]] = []
        self.outputs = outputs
        self.fail_apply = False
        self.fail_jobs = False
        self.reads = 0

    @property
    def kubeconfig(self) -> Path:
        return Path("/tmp/demo/kubeconfig")

    def apply(self, obj: Mapping[str, Any]) -> None:
        if self.fail_apply:
            raise RuntimeError("422 Unprocessable Entity")
        self.applied.append(obj)

    def read_runs(self, refs: Sequence[RunRef]) -> dict[str, Mapping[str, Any] | None]:
        snapshot = self.snapshots[min(self.reads, len(self.snapshots) - 1)]
        self.reads += 1
        if isinstance(snapshot, Exception):
            raise snapshot
        by_key = {f"default/{run['metadata']['name']}": run for run in snapshot}
        return {ref.key: by_key.get(ref.key) for ref in refs}

    def read_jobs(self, runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        if self.fail_jobs:
            raise ConnectionError("connection reset")
        return [{"kind": "Job", "metadata": {"name": "extraction-pipeline-chunk-1"}}]

    def outputs_dir(self, run: Mapping[str, Any]) -> Path | None:
        return self.outputs


def fake_time() -> tuple[Callable[[], float], Callable[[float], None]]:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return (lambda: now[0]), sleep


def follow_fast() -> Callable[..., Any]:
    clock, sleep = fake_time()
    return functools.partial(follow_runs, clock=clock, sleep=sleep)


def demo(backend: ScriptedBackend, *, output: str = "live", serve: bool = False, **kwargs: Any):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = demonstrate(
        backend,
        load_manifests([]),
        output=output,
        timeout=kwargs.pop("timeout", 10.0),
        serve=serve,
        stdout=stdout,
        stderr=stderr,
        follow=kwargs.pop("follow", follow_fast()),
        **kwargs,
    )
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def progression(make_run: Factory, node: Factory) -> list[list[dict[str, Any]]]:
    name = "extraction-pipeline"
    return [
        [make_run("Pending", name=name)],
        [make_run("Running", {"chunk": node("Running")}, name=name, progress="0/4")],
        [
            make_run(
                "Succeeded",
                {"chunk": node("Succeeded", finished="2026-11-23T03:00:02Z", message="15 chunks")},
                name=name,
                progress="4/4",
            )
        ],
    ]


def test_live_demo_applies_follows_and_summarises(
    progression: list[list[dict[str, Any]]], tmp_path: Path
) -> None:
    (tmp_path / "report.txt").write_text("Knowledge graph of run extraction-pipeline\n")
    backend = ScriptedBackend(progression, outputs=tmp_path)
    code, out, err = demo(backend)
    assert code == EXIT_SUCCEEDED
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in backend.applied] == [
        ("PersistentVolumeClaim", "corpus-data"),
        ("ExtractionRun", "extraction-pipeline"),
    ]
    assert "chunk: Running (attempt 1)" in out
    assert "chunk: Succeeded (attempt 1, took 1s): 15 chunks" in out
    assert "Run default/extraction-pipeline: Succeeded (4/4 nodes" in out
    assert f"Outputs: {tmp_path}" in out
    assert "    Knowledge graph of run extraction-pipeline" in out
    assert err == ""


def test_json_output_is_one_document_on_stdout(
    progression: list[list[dict[str, Any]]], tmp_path: Path
) -> None:
    code, out, err = demo(ScriptedBackend(progression, outputs=tmp_path), output="json")
    assert code == EXIT_SUCCEEDED
    document = json.loads(out)
    assert [run["status"]["phase"] for run in document["runs"]] == ["Succeeded"]
    assert document["runs"][0]["metadata"]["annotations"]
    assert document["jobs"] == [
        {"kind": "Job", "metadata": {"name": "extraction-pipeline-chunk-1"}}
    ]
    assert document["outputs"] == {"default/extraction-pipeline": str(tmp_path)}
    assert "Applied 1 run(s)" in err


def test_json_output_survives_a_failed_job_listing(
    progression: list[list[dict[str, Any]]],
) -> None:
    backend = ScriptedBackend(progression)
    backend.fail_jobs = True
    code, out, err = demo(backend, output="json")
    assert code == EXIT_SUCCEEDED
    assert json.loads(out)["jobs"] == []
    assert "could not list the runs' Jobs: connection reset" in err


def test_a_failed_run_exits_1(make_run: Factory, node: Factory) -> None:
    failed = make_run(
        "Failed",
        {"chunk": node("Failed", reason="NonRetryable", exitCode=2, message="bad input: x")},
        name="extraction-pipeline",
    )
    code, out, _ = demo(ScriptedBackend([[failed]]))
    assert code == EXIT_FAILED
    assert "[NonRetryable, exit 2] bad input: x" in out


def test_a_run_still_going_at_the_timeout_exits_2(make_run: Factory) -> None:
    backend = ScriptedBackend([[make_run("Running", name="extraction-pipeline")]])
    code, out, _ = demo(backend, timeout=3.0)
    assert code == EXIT_TIMED_OUT
    assert backend.reads == 13  # every 0.25 s of the fake clock, up to and including 3 s
    assert "Timed out after 3s" in out


def test_a_vanished_run_exits_1() -> None:
    code, out, _ = demo(ScriptedBackend([[]]))
    assert code == EXIT_FAILED
    assert "Run default/extraction-pipeline: not found" in out


def test_read_errors_are_noted_once_and_retried(progression: list[list[dict[str, Any]]]) -> None:
    error = ConnectionError("connection refused")
    code, out, _ = demo(ScriptedBackend([error, error, *progression]))
    assert code == EXIT_SUCCEEDED
    assert out.count("could not read the runs (ConnectionError: connection refused)") == 1


def test_apply_failure_exits_1_naming_the_object(progression: list[list[dict[str, Any]]]) -> None:
    backend = ScriptedBackend(progression)
    backend.fail_apply = True
    code, _, err = demo(backend)
    assert code == EXIT_FAILED
    assert "could not apply PersistentVolumeClaim default/corpus-data: 422" in err


def test_serve_prints_the_kubeconfig_and_waits(progression: list[list[dict[str, Any]]]) -> None:
    waited: list[bool] = []
    code, out, _ = demo(
        ScriptedBackend(progression), serve=True, wait_for_interrupt=lambda: waited.append(True)
    )
    assert code == EXIT_SUCCEEDED
    assert waited == [True]
    assert "kubectl --kubeconfig /tmp/demo/kubeconfig get xrun -w" in out


def test_ctrl_c_while_following_summarises_what_is_known(
    progression: list[list[dict[str, Any]]],
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    code, out, _ = demo(ScriptedBackend(progression), follow=interrupted)
    assert code == EXIT_INTERRUPTED
    assert "Run default/extraction-pipeline: Pending" in out


def demo_args(*manifests: str, outage: float = 0.0) -> argparse.Namespace:
    return argparse.Namespace(
        manifests=list(manifests), output="live", timeout=5.0, serve=False, outage=outage
    )


def test_bad_manifests_fail_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert run_demo(demo_args(str(bad), outage=30)) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "the manifests cannot be applied:\nno ExtractionRun in the manifests" in err


def test_sigterm_stops_the_demo_like_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_logs_go_to_the_file_not_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with logs_to_file(tmp_path / "demo.log"):
        logging.getLogger("kopf.objects").info("handler succeeded")
    assert "kopf.objects: handler succeeded" in (tmp_path / "demo.log").read_text()
    assert "handler succeeded" not in capsys.readouterr().err
