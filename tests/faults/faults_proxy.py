"""An HTTP proxy between one operator process and the API emulator.

Two jobs, both scoped to exactly one operator process (the emulator's own fault rules cannot tell
clients apart, and would hit the job runner too):

- it appends a tag to every request's User-Agent, so the emulator's request log says which of two
  operator replicas sent what (both send `extraction-operator` and `kopf/...` otherwise);
- it can fail a random fraction of requests with 500 or 429 (with `Retry-After`) before they
  reach the emulator, for tests of an API server in trouble.

Responses, watch streams included, are streamed through unchanged. The proxy runs its own event
loop in a daemon thread, so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web

from extraction_operator.localcluster.kubeconfig import write_kubeconfig

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class FaultyProxy:
    """`with FaultyProxy(upstream, tag="replica-a", fail_rate=0.1) as proxy:` -> `proxy.url`."""

    def __init__(self, upstream: str, *, tag: str, fail_rate: float = 0.0, seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.tag = tag
        self.fail_rate = fail_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.forwarded = 0
        self.failed: dict[int, int] = {500: 0, 429: 0}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at this proxy instead of the emulator."""
        return write_kubeconfig(path, self.url)

    def set_fail_rate(self, rate: float) -> None:
        with self._lock:
            self.fail_rate = rate

    def _draw_failure(self) -> int | None:
        with self._lock:
            if self._rng.random() >= self.fail_rate:
                self.forwarded += 1
                return None
            status = 500 if self._rng.random() < 0.5 else 429
            self.failed[status] += 1
            return status

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        failure = self._draw_failure()
        if failure is not None:
            reason = "InternalError" if failure == 500 else "TooManyRequests"
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": f"injected by the proxy: {reason}", "reason": reason,
                    "code": failure}  # fmt: skip
            headers = {"Retry-After": "1"} if failure == 429 else {}
            return web.Response(
                status=failure, text=json.dumps(body), content_type="application/json",
                headers=headers,
            )  # fmt: skip
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["User-Agent"] = f"{request.headers.get('User-Agent', '')} {self.tag}".strip()
        data = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=data or None,
            headers=headers,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client went away (a killed operator) or the upstream dropped the stream
            return response

    async def _start(self) -> str:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Streams whose client left but whose upstream watch is still open: end them now.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def start(self) -> FaultyProxy:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
