"""A stage for the long-outage tests, run as a stage pod's command with the session's Python (the
project's process kubelet runs pods as host processes, so the fake provider on 127.0.0.1 is in
reach). Never collected by pytest.

    python outage_stage.py extract   # CALLS provider calls, each inside `with circuit("llm")`
    python outage_stage.py bug       # always a real bug: RuntimeError, no provider call

`extract` sends `CALLS` (default 2) chunks to `$LLM_PROVIDER_URL`. A 5xx answer is raised inside
the breaker as `ProviderError` (its `status_code` makes the default classifier count it) and then
wrapped outside it, the way real stage code wraps a client error (`RuntimeError(...) from error`):
the SDK must find the provider failure in the exception chain. An open circuit raises
`CircuitOpen`, which `run_stage` turns into exit 75. A successful call stays in the breaker for
`ANSWER_SECONDS` more (a model takes seconds to answer; an overloaded API fails at once), so the
probe that closes the circuit holds its lease long enough for the operator to see it.

The shard named by `BUG_SHARD` fails its first attempt (`EXTRACTION_ATTEMPT` 1) with a real bug
instead, and only once the run's circuit is open (or after `BUG_WAIT_SECONDS`): a failure during
the outage that is not the provider's, which must still count against the node's retries.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

from extraction_operator.stage import circuit, get_breaker, run_stage

CIRCUIT = "llm"
TEXT = "Ada Lovelace wrote to Charles Babbage in June 1833 about the Analytical Engine."


class ProviderError(Exception):
    """The provider answered with an error status; 5xx counts as a provider failure."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"provider answered HTTP {status_code}: {detail}")
        self.status_code = status_code


def call_provider(url: str, run: str, chunk_id: str, index: int) -> int:
    """One extraction call; the number of mentions in the answer."""
    body = json.dumps({"chunk": {"id": chunk_id, "index": index, "text": TEXT}}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/extract",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Extraction-Run": run},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace")[:200]
        raise ProviderError(error.code, detail) from None
    except urllib.error.URLError as error:
        raise ConnectionError(f"{url}: {error.reason}") from None
    return len(reply["mentions"])


def wait_until_open(limit: float) -> str:
    """Wait until the run's circuit is not closed (read through the SDK's own store)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        state = get_breaker().store.document().circuit(CIRCUIT).state
        if state != "closed":
            return state
        time.sleep(0.2)
    return "closed"


def extract() -> int:
    env = os.environ
    shard = env.get("SHARD_INDEX", "0")
    attempt = env.get("EXTRACTION_ATTEMPT", "")
    run = env.get("EXTRACTION_RUN", "")
    if shard == env.get("BUG_SHARD") and attempt == "1":
        state = wait_until_open(float(env.get("BUG_WAIT_SECONDS", "60")))
        print(f"shard {shard} attempt {attempt}: circuit {state}; now failing with a bug")
        raise RuntimeError(f"a bug in shard {shard}: this is not the provider's fault")
    url = env["LLM_PROVIDER_URL"]
    answer_seconds = float(env.get("ANSWER_SECONDS", "0"))
    llm = circuit(CIRCUIT)
    found = 0
    for index in range(int(env.get("CALLS", "2"))):
        chunk_id = f"shard{shard}-chunk{index}"
        try:
            with llm:
                found += call_provider(url, run, chunk_id, index)
                time.sleep(answer_seconds)  # a model answers slowly; an overloaded API at once
        except (ProviderError, ConnectionError) as error:
            raise RuntimeError(f"extraction of {chunk_id} failed") from error
    print(f"shard {shard} attempt {attempt}: {found} mentions")
    return 0


def bug() -> int:
    circuit(CIRCUIT)  # a stage that uses the breaker, like the others, but fails on its own
    raise RuntimeError("a bug: this stage always fails, whatever the provider does")


if __name__ == "__main__":
    modes = {"extract": extract, "bug": bug}
    raise SystemExit(run_stage(modes[sys.argv[1]]))
