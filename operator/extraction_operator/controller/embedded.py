"""The real operator in a background thread of the current process.

`make demo` runs the local cluster and the operator in one process, and tests that need no
process-level faults use it too. It is the same registry, settings and reconciler as
`extraction-operator run`; only the thread and the explicit kubeconfig differ.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from .handlers import OperatorState
from .main import serve
from .options import OperatorOptions


class EmbeddedOperator:
    """`with EmbeddedOperator(kubeconfig=path) as op: op.ready.wait(10)`."""

    def __init__(
        self,
        kubeconfig: str,
        namespaces: list[str] | None = None,
        resync_seconds: float = 5.0,
        metrics_port: int = 0,
        options: OperatorOptions | None = None,
    ) -> None:
        self.options = options or OperatorOptions(
            namespaces=list(namespaces or []),
            kubeconfig=kubeconfig,
            metrics_port=metrics_port,
            liveness="",
            resync_seconds=resync_seconds,
        )
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._states: list[OperatorState] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="extraction-operator", daemon=True)

    @property
    def state(self) -> OperatorState | None:
        return self._states[0] if self._states else None

    def _main(self) -> None:
        try:
            asyncio.run(
                serve(
                    self.options,
                    stop_flag=self._stop,
                    ready_flag=self.ready,
                    state_out=self._states,
                )
            )
        except BaseException as error:
            self._error = error
            self.ready.set()

    def start(self) -> EmbeddedOperator:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._error is not None and not isinstance(self._error, asyncio.CancelledError):
            raise RuntimeError("the embedded operator failed") from self._error

    def __enter__(self) -> EmbeddedOperator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
