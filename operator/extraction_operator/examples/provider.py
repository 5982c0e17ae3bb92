"""A fake LLM provider on 127.0.0.1 that can go down on cue, for the outage demo and benchmark.

`POST /v1/extract` with `{"chunk": {"id", "index", "text"}}` answers `{"mentions": [...]}`,
computed with the mentions stage's own heuristic, so a pipeline gives the same graph whether its
mentions stage calls the provider or not. During an outage every extraction call answers 503 at
once (a fast failure, like an overloaded API behind a load balancer). The outage window is either

- `outage_start=None`: it starts with the first extraction call (so a demo or benchmark run sees
  the outage no matter how long its cluster took to start), or
- `outage_start=S`: it starts S seconds after the provider started,

and lasts `outage_seconds`. `POST /control/outage?seconds=N` starts an outage of N seconds now.

Every extraction call is counted (total, failed, and per run, from the `X-Extraction-Run` header
the stage sends); `GET /stats` returns the counts as JSON, and `FakeProvider.stats()` in-process.

    with FakeProvider(outage_seconds=60) as provider:
        print(provider.url)             # http://127.0.0.1:<port>

CLI: `python -m extraction_operator.examples.provider --port 0 --outage-seconds 60`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .mentions import find_mentions
from .provider_client import EXTRACT_PATH, RUN_HEADER
from .records import Chunk
from .runtime import StageInputError

STATS_PATH = "/stats"
CONTROL_OUTAGE_PATH = "/control/outage"
OUTAGE_STATUS = 503
MAX_BODY_BYTES = 1 << 20
MAX_FAILURE_TIMES = 1000


@dataclass
class CallCounts:
    total: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"total_calls": self.total, "failed_calls": self.failed}


@dataclass
class ProviderStats:
    """What reached the provider: every extraction call, and the ones it failed on purpose."""

    total: CallCounts = field(default_factory=CallCounts)
    runs: dict[str, CallCounts] = field(default_factory=dict)
    outage_started_at: float | None = None
    outage_ends_at: float | None = None
    first_failure_at: float | None = None
    last_failure_at: float | None = None
    # When each failed call arrived (wall clock), to see how a breaker spread them over an outage;
    # bounded so an outage without a breaker cannot grow it without limit.
    failure_times: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.total.to_json(),
            "runs": {run: counts.to_json() for run, counts in sorted(self.runs.items())},
            "outage_started_at": self.outage_started_at,
            "outage_ends_at": self.outage_ends_at,
            "first_failure_at": self.first_failure_at,
            "last_failure_at": self.last_failure_at,
            "failure_times": list(self.failure_times),
        }


class OutageSchedule:
    """When the provider fails. Wall-clock seconds (`time.time`), so the stats line up with
    Kubernetes timestamps in reports."""

    def __init__(
        self,
        outage_seconds: float,
        outage_start: float | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if outage_seconds < 0:
            raise ValueError(f"outage_seconds must be >= 0, got {outage_seconds}")
        if outage_start is not None and outage_start < 0:
            raise ValueError(f"outage_start must be >= 0 or None, got {outage_start}")
        self._clock = clock
        self._seconds = outage_seconds
        self.starts_at: float | None = (
            clock() + outage_start if outage_start is not None and outage_seconds > 0 else None
        )
        self._waiting_for_first_call = outage_start is None and outage_seconds > 0

    @property
    def ends_at(self) -> float | None:
        return None if self.starts_at is None else self.starts_at + self._seconds

    def start_now(self, seconds: float) -> None:
        """Begin an outage of `seconds` now (the control endpoint)."""
        self.starts_at, self._seconds = self._clock(), seconds
        self._waiting_for_first_call = False

    def failing(self) -> bool:
        """Whether a call arriving now fails; the first call may start the outage."""
        now = self._clock()
        if self._waiting_for_first_call:
            self._waiting_for_first_call = False
            self.starts_at = now
        ends_at = self.ends_at
        if self.starts_at is None or ends_at is None:
            return False
        return self.starts_at <= now < ends_at


class FakeProvider:
    """The HTTP server, in a background thread. Thread-safe counters; stop() joins the thread."""

    def __init__(
        self,
        *,
        outage_seconds: float = 0.0,
        outage_start: float | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._schedule = OutageSchedule(outage_seconds, outage_start, clock=clock)
        self._stats = ProviderStats()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-llm-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- behaviour ---------------------------------------------------------------------------

    def start_outage(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with self._lock:
            self._schedule.start_now(seconds)

    def admit(self, run: str) -> bool:
        """Count one extraction call from `run`: True when it may succeed, False in an outage."""
        with self._lock:
            failing = self._schedule.failing()
            stats = self._stats
            per_run = stats.runs.setdefault(run or "-", CallCounts())
            for counts in (stats.total, per_run):
                counts.total += 1
                counts.failed += failing
            if failing:
                now = self._clock()
                stats.first_failure_at = stats.first_failure_at or now
                stats.last_failure_at = now
                if len(stats.failure_times) < MAX_FAILURE_TIMES:
                    stats.failure_times.append(now)
            return not failing

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._stats.outage_started_at = self._schedule.starts_at
            self._stats.outage_ends_at = self._schedule.ends_at
            return self._stats.to_json()


def extraction_reply(body: bytes) -> dict[str, Any]:
    """The answer to one extraction request: the chunk's mentions. Raises ValueError on a body
    that is not `{"chunk": {...}}`."""
    try:
        request = json.loads(body)
    except ValueError as error:
        raise ValueError(f"the body is not JSON: {error}") from None
    if not isinstance(request, dict):
        raise ValueError('the body must be a JSON object {"chunk": {...}}')
    try:
        chunk = Chunk.from_json(request.get("chunk"), "chunk")
    except StageInputError as error:
        raise ValueError(str(error)) from None
    return {"mentions": [mention.to_json() for mention in find_mentions(chunk)]}


def _handler_for(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # hundreds of calls a minute: keep the demo's terminal clean

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes | None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self._send(400, {"error": f"Content-Length must be 0..{MAX_BODY_BYTES}"})
                return None
            return self.rfile.read(length)

        def do_GET(self) -> None:
            if urlsplit(self.path).path == STATS_PATH:
                self._send(200, provider.stats())
            else:
                self._send(404, {"error": f"no such path; try POST {EXTRACT_PATH}"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            if body is None:
                return
            if url.path == CONTROL_OUTAGE_PATH:
                self._control_outage(parse_qs(url.query).get("seconds", [""])[0])
            elif url.path == EXTRACT_PATH:
                self._extract(body)
            else:
                self._send(404, {"error": f"no such path; try POST {EXTRACT_PATH}"})

        def _control_outage(self, raw: str) -> None:
            try:
                seconds = float(raw)
                provider.start_outage(seconds)
            except ValueError:
                self._send(400, {"error": f"seconds={raw!r}: give a number of seconds >= 0"})
                return
            self._send(200, provider.stats())

        def _extract(self, body: bytes) -> None:
            if not provider.admit(self.headers.get(RUN_HEADER, "")):
                self._send(
                    OUTAGE_STATUS,
                    {"error": "overloaded: the fake provider is in a simulated outage"},
                    {"Retry-After": "30"},
                )
                return
            try:
                reply = extraction_reply(body)
            except ValueError as error:
                self._send(400, {"error": str(error)})
                return
            self._send(200, reply)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m extraction_operator.examples.provider", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--outage-seconds", type=float, default=0.0, help="how long it fails")
    parser.add_argument(
        "--outage-start",
        type=float,
        default=None,
        help="seconds after start when the outage begins (default: at the first call)",
    )
    args = parser.parse_args(argv)
    if args.outage_seconds < 0 or (args.outage_start is not None and args.outage_start < 0):
        parser.error("--outage-seconds and --outage-start must be >= 0")
    provider = FakeProvider(
        outage_seconds=args.outage_seconds, outage_start=args.outage_start, port=args.port
    ).start()
    print(provider.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        provider.stop()
        print(json.dumps(provider.stats()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
