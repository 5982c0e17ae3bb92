"""`extraction-operator demo`: the local cluster and the operator in one process, running examples.

The flow is: check the manifests (before starting anything, so a typo costs no waiting), start the
local cluster and the embedded operator, apply the runs, follow them live, then print a summary
(or one JSON document with `--output json`) and exit with a code a script can test:
0 every run succeeded, 1 a run failed (or could not be applied), 2 `--timeout` passed first,
130 interrupted by Ctrl-C.

`--outage SECONDS` also starts a fake LLM provider in this process and points the runs at it
(`outage.py`): the provider fails for SECONDS from its first call, and the live view shows the
`llm` circuit opening, the shards waiting as `Blocked`, a probe, and the run finishing.

`demonstrate` holds that flow against the small `DemoBackend` protocol, so the tests can drive it
with a scripted backend; `run_demo` wires it to the real cluster (`backend.LocalDemoBackend`).
Operator and cluster logs go to `demo.log` in the demo's work directory, which is kept after exit
so the stage outputs and logs can be inspected.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from .follow import Outcome, follow_runs, utc_now
from .manifests import ManifestError, Manifests, RunRef, load_manifests
from .outage import provider_note, with_provider
from .status import run_key
from .summary import EXIT_FAILED, exit_code, json_document, render_summary
from .view import LiveView

JSON = Mapping[str, Any]
EXIT_INTERRUPTED = 130
LOG_FILE = "demo.log"


class DemoBackend(Protocol):
    """What the demo needs from a cluster with the operator running on it."""

    @property
    def kubeconfig(self) -> Path: ...

    def apply(self, obj: JSON) -> None: ...

    def read_runs(self, refs: Sequence[RunRef]) -> Mapping[str, JSON | None]: ...

    def read_jobs(self, runs: Sequence[JSON]) -> list[JSON]: ...

    def outputs_dir(self, run: JSON) -> Path | None: ...


def _wait_for_ctrl_c() -> None:
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        return


def demonstrate(
    backend: DemoBackend,
    manifests: Manifests,
    *,
    output: str,
    timeout: float,
    serve: bool,
    stdout: TextIO,
    stderr: TextIO,
    follow: Callable[..., Outcome] = follow_runs,
    wait_for_interrupt: Callable[[], None] = _wait_for_ctrl_c,
    provider_stats: Callable[[], JSON] | None = None,
) -> int:
    """Apply the manifests, follow the runs, report, and return the exit code.

    `provider_stats` (with `--outage`) reports what reached the fake provider, in the summary and
    as `"provider"` in the JSON document."""
    live = output == "live"
    notes = stdout if live else stderr  # in JSON mode stdout carries the document only
    if not _apply_all(backend, manifests, stderr):
        return EXIT_FAILED
    notes.write(f"Applied {len(manifests.runs)} run(s); following them (timeout {timeout:.0f}s).\n")
    view = LiveView(stdout) if live else None
    interrupted = False
    try:
        outcome = follow(lambda: backend.read_runs(manifests.runs), view, timeout)
    except KeyboardInterrupt:
        interrupted = True
        outcome = _last_known(backend, manifests, stderr)
    stats = provider_stats() if provider_stats is not None else None
    _report(
        backend, outcome, live=live, timeout=timeout, stdout=stdout, stderr=stderr, provider=stats
    )
    if interrupted:
        return EXIT_INTERRUPTED
    code = exit_code(outcome.runs, expected=len(manifests.runs), timed_out=outcome.timed_out)
    if serve:
        notes.write(
            "The local API stays up until Ctrl-C. Try:\n"
            f"  kubectl --kubeconfig {backend.kubeconfig} get xrun -w\n"
        )
        notes.flush()
        wait_for_interrupt()
    return code


def _apply_all(backend: DemoBackend, manifests: Manifests, stderr: TextIO) -> bool:
    """Apply every object in order; on the first failure say which object and stop."""
    for obj in manifests.objects:
        try:
            backend.apply(obj)
        except Exception as error:
            meta = obj.get("metadata") or {}
            stderr.write(
                f"could not apply {obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}: "
                f"{error}\n"
            )
            return False
    return True


def _last_known(backend: DemoBackend, manifests: Manifests, stderr: TextIO) -> Outcome:
    """After Ctrl-C: one more read, so the summary shows where the runs got to."""
    outcome = Outcome()
    try:
        snapshot = backend.read_runs(manifests.runs)
    except Exception as error:
        stderr.write(f"could not read the runs after the interrupt: {error}\n")
        return outcome
    outcome.runs = [run for run in snapshot.values() if run is not None]
    outcome.missing = [key for key, run in snapshot.items() if run is None]
    return outcome


def _report(
    backend: DemoBackend,
    outcome: Outcome,
    *,
    live: bool,
    timeout: float,
    stdout: TextIO,
    stderr: TextIO,
    provider: JSON | None = None,
) -> None:
    """The closing text summary, or the JSON document."""
    outputs = {run_key(run): backend.outputs_dir(run) for run in outcome.runs}
    if live:
        now = utc_now()
        stdout.write("\n" + render_summary(outcome.runs, now, outputs, missing=outcome.missing))
        if provider is not None:
            stdout.write(provider_note(provider) + "\n")
        if outcome.timed_out:
            stdout.write(f"Timed out after {timeout:.0f}s; the runs above had not finished.\n")
    else:
        try:
            jobs = backend.read_jobs(outcome.runs)
        except Exception as error:
            stderr.write(f"could not list the runs' Jobs: {error}\n")
            jobs = []
        document = json_document(outcome.runs, jobs, outputs)
        read_events = getattr(backend, "read_events", None)  # optional: scripted backends lack it
        if callable(read_events):
            try:
                document["events"] = read_events(outcome.runs)
            except Exception as error:
                stderr.write(f"could not list the runs' Events: {error}\n")
        if provider is not None:
            document["provider"] = dict(provider)
        stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    stdout.flush()


@contextmanager
def logs_to_file(path: Path) -> Iterator[None]:
    """Send every log record (kopf, the operator, the local cluster) to `path` instead of the
    terminal, where it would tear the live view apart."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        handler.close()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (`timeout`, a CI runner cancelling) like Ctrl-C, so the stage processes and
    the API server are stopped on the way out instead of being orphaned."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(args: argparse.Namespace) -> int:
    """The `demo` subcommand (flags declared in `cli.py`).

    `--timeout` bounds the whole command: starting the cluster and operator is paid from it."""
    started = time.monotonic()
    stdout, stderr = sys.stdout, sys.stderr
    try:
        manifests = load_manifests(args.manifests)
    except ManifestError as error:
        stderr.write(f"extraction-operator demo: the manifests cannot be applied:\n{error}\n")
        return EXIT_FAILED
    if args.outage < 0:
        stderr.write("extraction-operator demo: --outage must be a number of seconds >= 0\n")
        return EXIT_FAILED
    if args.outage > 0:
        from extraction_operator.examples.provider import FakeProvider

        with FakeProvider(outage_seconds=args.outage) as provider:
            notes = stdout if args.output == "live" else stderr
            notes.write(
                f"Fake LLM provider at {provider.url}: it fails every call for "
                f"{args.outage:g}s from the first one.\n"
            )
            return _run_demo(
                args, with_provider(manifests, provider.url, args.outage), started, provider.stats
            )
    return _run_demo(args, manifests, started, None)


def _run_demo(
    args: argparse.Namespace,
    manifests: Manifests,
    started: float,
    provider_stats: Callable[[], JSON] | None,
) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    from .backend import LocalDemoBackend  # imports kopf and the cluster: only when needed

    workdir = Path(tempfile.mkdtemp(prefix="extraction-demo-"))
    notes = stdout if args.output == "live" else stderr
    notes.write(f"Work directory (logs, volumes, kubeconfig): {workdir}\n")
    notes.flush()
    with logs_to_file(workdir / LOG_FILE), sigterm_as_interrupt():
        try:
            with LocalDemoBackend(workdir, ready_seconds=max(1.0, args.timeout)) as backend:
                return demonstrate(
                    backend,
                    manifests,
                    output=args.output,
                    timeout=max(0.0, args.timeout - (time.monotonic() - started)),
                    serve=args.serve,
                    stdout=stdout,
                    stderr=stderr,
                    provider_stats=provider_stats,
                )
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except RuntimeError as error:
            stderr.write(f"extraction-operator demo: {error} (see {workdir / LOG_FILE})\n")
            return EXIT_FAILED
