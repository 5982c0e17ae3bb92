"""The real backend on the local cluster, with run status written by hand (no operator): reading
runs and their Jobs through the kubernetes client, and finding the stage outputs on disk."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from extraction_operator.demo.backend import LocalDemoBackend
from extraction_operator.demo.main import demonstrate
from extraction_operator.demo.manifests import Manifests, RunRef

RUN: dict[str, Any] = {
    "apiVersion": "extraction.dev/v1alpha1",
    "kind": "ExtractionRun",
    "metadata": {"name": "by-hand", "namespace": "default"},
    "spec": {
        "image": "example",
        "workspace": {"persistentVolumeClaim": {"claimName": "corpus-data"}},
        "stages": [{"name": "write", "command": ["python", "-c", "pass"]}],
    },
}
WRITE_REPORT = (
    "import os, pathlib; "
    "folder = pathlib.Path(os.environ['EXTRACTION_WORKSPACE']) / os.environ['OUTPUT_DIR']; "
    "folder.mkdir(parents=True, exist_ok=True); "
    "(folder / 'report.txt').write_text('written by the stage\\n')"
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDemoBackend]:
    with LocalDemoBackend(tmp_path_factory.mktemp("demo"), start_operator=False) as started:
        yield started


def stage_job(name: str, run: dict[str, Any] | None) -> dict[str, Any]:
    owner = (
        [
            {
                "apiVersion": "extraction.dev/v1alpha1",
                "kind": "ExtractionRun",
                "name": run["metadata"]["name"],
                "uid": run["metadata"]["uid"],
                "controller": True,
            }
        ]
        if run
        else []
    )
    output_dir = f"by-hand-{run['metadata']['uid'][:8]}" if run else "elsewhere"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": owner},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "volumes": [
                        {"name": "ws", "persistentVolumeClaim": {"claimName": "corpus-data"}}
                    ],
                    "containers": [
                        {
                            "name": "stage",
                            "image": "example",
                            "command": [sys.executable, "-c", WRITE_REPORT],
                            "env": [
                                {"name": "EXTRACTION_WORKSPACE", "value": "/workspace"},
                                {"name": "OUTPUT_DIR", "value": output_dir},
                            ],
                            "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}],
                        }
                    ],
                }
            },
        },
    }


def wait_for_job(backend: LocalDemoBackend, run: dict[str, Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = backend.read_jobs([run])
        if jobs and all((job.get("status") or {}).get("succeeded") == 1 for job in jobs):
            return [dict(job) for job in jobs]
        time.sleep(0.1)
    raise AssertionError(f"the stage Job did not succeed: {backend.read_jobs([run])}")


def test_backend_reads_runs_jobs_and_outputs(backend: LocalDemoBackend) -> None:
    ref = RunRef("default", "by-hand")
    backend.apply(RUN)
    run = dict(backend.read_runs([ref])[ref.key] or {})
    assert run["metadata"]["uid"]
    assert backend.read_runs([RunRef("default", "absent")]) == {"default/absent": None}

    backend.apply(stage_job("by-hand-write-1", run))
    backend.apply(stage_job("someone-elses-job", None))
    jobs = wait_for_job(backend, run)
    assert [job["metadata"]["name"] for job in jobs] == ["by-hand-write-1"]

    outputs = backend.outputs_dir(run)
    assert outputs is not None
    assert outputs.name == f"by-hand-{run['metadata']['uid'][:8]}"
    assert (outputs / "report.txt").read_text() == "written by the stage\n"

    api = client.CustomObjectsApi(backend._api_client)
    status = {
        "phase": "Succeeded",
        "progress": "1/1",
        "nodes": {"write": {"phase": "Succeeded", "attempts": 1, "jobName": "by-hand-write-1"}},
    }
    api.patch_namespaced_custom_object_status(
        "extraction.dev", "v1alpha1", "default", "extractionruns", "by-hand", {"status": status}
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    manifests = Manifests(objects=[], runs=[ref])
    code = demonstrate(
        backend, manifests, output="json", timeout=10, serve=False, stdout=stdout, stderr=stderr
    )
    assert code == 0
    document = json.loads(stdout.getvalue())
    assert document["runs"][0]["status"]["nodes"]["write"]["jobName"] == "by-hand-write-1"
    assert document["runs"][0]["spec"]["stages"][0]["name"] == "write"
    assert [job["metadata"]["name"] for job in document["jobs"]] == ["by-hand-write-1"]


def test_a_run_without_a_workspace_has_no_outputs(backend: LocalDemoBackend) -> None:
    assert backend.outputs_dir({"metadata": {"name": "x", "uid": "u"}, "spec": {}}) is None
    assert backend.kubeconfig.is_file()


def test_outputs_are_looked_up_only_where_the_claim_maps(backend: LocalDemoBackend) -> None:
    run = {
        "metadata": {"name": "by-hand", "namespace": "other", "uid": "nothing-here"},
        "spec": {"workspace": {"persistentVolumeClaim": {"claimName": "corpus-data"}}},
    }
    assert backend.outputs_dir(run) is None
    assert isinstance(backend.workdir, Path)
