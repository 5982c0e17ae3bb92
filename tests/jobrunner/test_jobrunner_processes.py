"""Unit tests of stage processes: process groups, exit codes, termination messages, log tails."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from extraction_operator.localcluster.processes import (
    StageProcess,
    exit_code_of,
    log_tail,
    read_termination_message,
)
from extraction_operator.localcluster.testing import alive

pytestmark = pytest.mark.timeout(20)


def test_exit_code_of_a_signal_death_is_128_plus_signal() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(3) == 3
    assert exit_code_of(-signal.SIGKILL) == 137
    assert exit_code_of(-signal.SIGTERM) == 143


def test_log_tail_keeps_the_last_80_lines_and_2048_bytes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(200)))
    tail = log_tail(log)
    assert tail.splitlines()[0] == "line 120"
    assert tail.splitlines()[-1] == "line 199"
    log.write_text("x" * 5000)
    assert log_tail(log) == "x" * 2048
    assert log_tail(tmp_path / "missing") == ""


def test_termination_message_is_capped_at_4096_bytes(tmp_path: Path) -> None:
    path = tmp_path / "msg"
    path.write_text("m" * 5000)
    assert read_termination_message(path) == "m" * 4096
    assert read_termination_message(tmp_path / "none") == ""


async def test_output_goes_to_the_log_and_exit_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"
    proc = await StageProcess.start(
        [sys.executable, "-c", code], env={}, cwd=tmp_path, log_path=log
    )
    assert exit_code_of(await proc.wait()) == 4
    assert sorted(log.read_text().split()) == ["err", "out"]


async def test_terminate_reaches_children_and_escalates_to_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    script = f"trap '' TERM; sleep 30 & echo $! > {pidfile}; wait"
    proc = await StageProcess.start(
        ["sh", "-c", script],
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        log_path=tmp_path / "l",
    )
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    child = int(pidfile.read_text())
    code = await proc.terminate(0.3)
    assert exit_code_of(code) == 137
    await proc.wait()
    # SIGKILL to the group is delivered at once, but the child dies only when next scheduled:
    # on a loaded machine that can be after its parent was reaped.
    for _ in range(100):
        if not alive(child):
            break
        await asyncio.sleep(0.05)
    assert not alive(child)


async def test_terminate_lets_a_trap_exit_cleanly(tmp_path: Path) -> None:
    script = "trap 'echo bye; exit 0' TERM; while true; do sleep 0.05; done"
    log = tmp_path / "l"
    proc = await StageProcess.start(
        ["sh", "-c", script], env={"PATH": os.environ["PATH"]}, cwd=tmp_path, log_path=log
    )
    await asyncio.sleep(0.2)
    assert await proc.terminate(5) == 0
    assert "bye" in log.read_text()


async def test_missing_program_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await StageProcess.start(
            ["/nonexistent/prog"], env={}, cwd=tmp_path, log_path=tmp_path / "l"
        )
