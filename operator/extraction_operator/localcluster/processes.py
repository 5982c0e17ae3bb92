"""Stage processes: start one per pod, signal its whole process group, read what it left behind.

Each process starts in its own session, so a signal reaches the stage and every child it spawned
(a `sh -c` wrapper, a `python -m` that forks), the way stopping a container stops everything in
it. When the main process exits, the rest of its group is killed too: a container ends with its
PID 1, and nothing a stage started may outlive the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

from .aio import within

# kubelet's limits on the termination message and on the log tail used by FallbackToLogsOnError.
MAX_TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


def exit_code_of(returncode: int) -> int:
    """Container-runtime exit code: a death by signal N is reported as 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def read_termination_message(path: Path) -> str:
    """The termination message file's content (at most 4 KiB, like the kubelet), or ''."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TERMINATION_MESSAGE_BYTES)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def log_tail(
    path: Path, lines: int = FALLBACK_LOG_LINES, max_bytes: int = FALLBACK_LOG_BYTES
) -> str:
    """The last `lines` lines of a log, cut to its last `max_bytes` bytes (kubelet's fallback)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(0, size - 65536))
            data = handle.read()
    except OSError:
        return ""
    tail = b"".join(data.splitlines(keepends=True)[-lines:])
    return tail[-max_bytes:].decode("utf-8", "replace")


class StageProcess:
    """One running stage program with its output going to a log file."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.returncode: int | None = None

    @classmethod
    async def start(
        cls, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path
    ) -> StageProcess:
        """Start `argv` in a new session; stdout and stderr both go to `log_path`.

        Raises OSError when the program cannot be executed (not found, not executable).
        """
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=str(cwd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.returncode is None

    async def wait(self) -> int:
        """Wait for the main process to exit, then kill what is left of its group."""
        code = await self._proc.wait()
        self.returncode = code
        self.signal_group(signal.SIGKILL)
        return code

    def signal_group(self, sig: int) -> bool:
        """Send `sig` to the whole process group; False when nothing was there to signal."""
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def terminate(self, grace_seconds: float) -> int:
        """SIGTERM the group, SIGKILL it after `grace_seconds`; returns the exit status."""
        if self.returncode is not None:
            return self.returncode
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            return await within(asyncio.shield(self._proc.wait()), grace_seconds)
        self.signal_group(signal.SIGKILL)
        return await self._proc.wait()
