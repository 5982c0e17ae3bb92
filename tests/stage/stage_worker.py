"""A stage process for the multi-process breaker tests; run as a script, never collected.

    python stage_worker.py record N          # N calls that all time out
    python stage_worker.py call URL          # one call to the fake provider, as a stage would
    python stage_worker.py healthy N URL     # N calls to a healthy provider, as fast as it goes

Every mode can wait for a start signal (`--ready FILE --go FILE`) so that many processes act at
the same moment, and prints its breaker statistics as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from extraction_operator.stage import CircuitOpen, circuit, get_breaker, run_stage


def wait_for(path: Path, limit: float = 60.0) -> None:
    deadline = time.time() + limit
    while not path.exists():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.005)


def report(extra: dict[str, object]) -> None:
    breaker = get_breaker()
    stats = {
        **dataclasses.asdict(breaker.stats),
        **dataclasses.asdict(breaker.store.stats),
        **extra,
    }
    print(json.dumps(stats), flush=True)


def record(count: int) -> int:
    raised = 0
    for _ in range(count):
        try:
            with circuit("llm"):
                raise TimeoutError("provider timed out")
        except TimeoutError:
            raised += 1
        except CircuitOpen:
            pass
    report({"timeouts": raised})
    return 0


def call(url: str) -> int:
    outcome = "ok"
    try:
        with circuit("llm"):
            urllib.request.urlopen(url, timeout=30).read()
    except urllib.error.HTTPError as exc:  # the stage handles provider errors and carries on
        outcome = f"http {exc.code}"
    except CircuitOpen:
        report({"outcome": "circuit-open"})
        raise
    report({"outcome": outcome})
    return 0


def healthy(count: int, url: str) -> int:
    started = time.time()
    for _ in range(count):
        with circuit("llm"):
            urllib.request.urlopen(url, timeout=30).read()
    report({"seconds": time.time() - started})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["record", "call", "healthy"])
    parser.add_argument("arg")
    parser.add_argument("url", nargs="?")
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args()
    get_breaker().store.document()  # connect and warm the cache before the start signal
    if args.ready is not None:
        args.ready.write_text("ready")
    if args.go is not None:
        wait_for(args.go)
    if args.mode == "record":
        return record(int(args.arg))
    if args.mode == "healthy":
        return healthy(int(args.arg), args.url)
    return call(args.arg)


if __name__ == "__main__":
    sys.exit(run_stage(main))
