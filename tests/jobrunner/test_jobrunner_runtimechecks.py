"""The runtime's refusals, in its own words: unparseable image references and commands that
cannot be executed (see localcluster/runtimechecks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from extraction_operator.localcluster.runtimechecks import exec_problem, image_problem


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11-slim",
        "ghcr.io/extraction-dev/extraction-operator:0.1.0",
        "localhost:5000/team/stage",
        "registry.example/a/b@sha256:" + "a" * 64,
        "busybox",
    ],
)
def test_valid_references_pass(image: str) -> None:
    assert image_problem(image) is None


@pytest.mark.parametrize(
    "image", ["Extraction Stage:1", "upper/CASE", "trailing:", "a//b", "x" * 256, "-leading"]
)
def test_invalid_references_get_the_kubelets_message(image: str) -> None:
    assert image_problem(image) == (
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
        "invalid reference format"
    )


def test_a_missing_image_is_left_to_the_api_server() -> None:
    assert image_problem(None) is None
    assert image_problem("") is None


def test_commands_are_resolved_as_exec_would(tmp_path: Path) -> None:
    script = tmp_path / "stage"
    script.write_text("#!/bin/sh\n")
    assert exec_problem("sh", "/usr/bin:/bin", tmp_path) is None
    assert exec_problem("no-such-program", "/usr/bin:/bin", tmp_path) == (
        'exec: "no-such-program": executable file not found in $PATH'
    )
    assert exec_problem("/nonexistent/extract", "/bin", tmp_path) == (
        'exec: "/nonexistent/extract": stat /nonexistent/extract: no such file or directory'
    )
    assert exec_problem("./stage", "/bin", tmp_path) == 'exec: "./stage": permission denied'
    script.chmod(0o755)
    assert exec_problem("./stage", "/bin", tmp_path) is None
    assert exec_problem(str(tmp_path), "/bin", tmp_path) == f'exec: "{tmp_path}": permission denied'
