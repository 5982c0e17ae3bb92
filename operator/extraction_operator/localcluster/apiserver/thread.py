"""Run the emulator on its own event loop in a daemon thread, for synchronous tests and tools.

`with ApiServerThread() as server:` gives the same `url`, `faults`, `request_log`, `store` and
`write_kubeconfig` as `ApiServer`; fault and log methods are thread-safe, and the store takes its
own lock, so a synchronous test can use all of them while the server serves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

from .faults import FaultInjector, RequestLog
from .server import ApiServer
from .store import Store


class ApiServerThread:
    """An `ApiServer` running in a background thread; start()/stop() or use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.server = ApiServer(host, port, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self, timeout: float = 10.0) -> ApiServerThread:
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as error:  # report start failures to the caller
                started.set_exception(error)
                loop.close()
                return
            started.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.server.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                self._stopped.set()

        self._thread = threading.Thread(target=run, name="apiserver-emulator", daemon=True)
        self._thread.start()
        started.result(timeout=timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = None
        self._thread = None

    def __enter__(self) -> ApiServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def faults(self) -> FaultInjector:
        return self.server.faults

    @property
    def request_log(self) -> RequestLog:
        return self.server.request_log

    @property
    def store(self) -> Store:
        return self.server.store

    def write_kubeconfig(self, path: str | Path) -> Path:
        return self.server.write_kubeconfig(path)
