"""A stage that keeps its run's circuit breaker through the real stage SDK, with the pod's own
token, for the real-tier breaker tests. Run as the command of a stage pod, never collected.

    python stage_breaker.py hammer N [GO_FILE]   # N provider timeouts, all at once with the others
    python stage_breaker.py first-failure GO_FILE # one timeout as soon as GO_FILE exists
    python stage_breaker.py calls URL K           # K provider calls; exit 1 at the first failure
    python stage_breaker.py fail-first-attempt    # one timeout; attempt 1 exits 1, later ones 0
    python stage_breaker.py forge                 # write a forged document (2099, huge counters)

Prints `BREAKER {...}` (the SDK's and the store's statistics, and what this mode measured), then
`BREAKER DONE`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from extraction_operator.stage import CircuitOpen, circuit, get_breaker, run_stage


class ProviderError(Exception):
    """An HTTP error of the provider; `status_code` lets the default classifier count 5xx."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"provider answered HTTP {status_code}")
        self.status_code = status_code


def report(extra: dict[str, Any]) -> None:
    breaker = get_breaker()
    stats = {
        **dataclasses.asdict(breaker.stats),
        **dataclasses.asdict(breaker.store.stats),
        **extra,
    }
    print("BREAKER " + json.dumps(stats), flush=True)
    print("BREAKER DONE", flush=True)


def wait_for(path: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def timeouts(count: int) -> int:
    raised = 0
    for _ in range(count):
        try:
            with circuit("llm"):
                raise TimeoutError("provider timed out")
        except TimeoutError:
            raised += 1
        except CircuitOpen:
            pass
    return raised


def hammer(count: int, go: str | None) -> int:
    get_breaker().store.document()  # read once (and wait out the operator) before the barrier
    if go:
        wait_for(go)
    started = time.monotonic()
    raised = timeouts(count)
    report({"timeouts": raised, "seconds": time.monotonic() - started})
    return 0


def first_failure(go: str) -> int:
    wait_for(go)
    started = time.monotonic()
    raised = timeouts(1)
    report({"timeouts": raised, "seconds": time.monotonic() - started})
    return 0


def calls(url: str, count: int) -> int:
    chunk = {"id": f"c-{os.environ.get('SHARD_INDEX', '0')}", "index": 0, "text": "Ada met Bob."}
    body = json.dumps({"chunk": chunk}).encode()

    def one() -> None:
        request = urllib.request.Request(
            url.rstrip("/") + "/v1/extract", data=body, method="POST",
            headers={"Content-Type": "application/json",
                     "X-Extraction-Run": os.environ.get("EXTRACTION_RUN", "")},
        )  # fmt: skip
        try:
            with circuit("llm"), urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise ProviderError(error.code) from None

    def main() -> int:
        for _ in range(count):
            one()  # a failure ends the attempt (exit 1); an open circuit exits 75
        return 0

    try:
        code = run_stage(main)
    except ProviderError as error:  # the first failed call fails the attempt; retries: operator
        print(f"call failed: {error}", flush=True)
        code = 1
    report({"exit": code})
    return code


def forge() -> int:
    """Write a forged document into the own run's annotation, as a compromised stage could: a
    circuit opened in 2099 with counters beyond 64 bits."""
    forged = {"v": 1, "circuits": {"llm": {
        "state": "open", "failures": 10**30, "opens": 10**25, "generation": 1,
        "openedAt": "2099-01-01T00:00:00Z", "lastError": "forged " + "x" * 600}}}  # fmt: skip
    api = get_breaker().store.api
    deadline = time.monotonic() + 60
    while True:
        try:
            snapshot = api.read()
            api.write(snapshot.resource_version, json.dumps(forged))
            break
        except Exception as error:  # not enrolled yet, a conflict: try again
            if time.monotonic() > deadline:
                raise
            print(f"retrying the forgery: {error}", flush=True)
            time.sleep(0.5)
    report({"forged": True})
    return 0


def fail_first_attempt() -> int:
    raised = timeouts(1)
    attempt = os.environ.get("EXTRACTION_ATTEMPT", "")
    report({"timeouts": raised, "attempt": attempt})
    return 1 if attempt == "1" else 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    mode = argv[0]
    if mode == "hammer":
        return hammer(int(argv[1]), argv[2] if len(argv) > 2 else None)
    if mode == "first-failure":
        return first_failure(argv[1])
    if mode == "calls":
        return calls(argv[1], int(argv[2]))
    if mode == "forge":
        return forge()
    if mode == "fail-first-attempt":
        return fail_first_attempt()
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
