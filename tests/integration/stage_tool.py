"""A configurable stage program for integration tests (run by the local job runner).

It records each invocation in a log file so tests can check what ran, in which order and when,
and it can fail for its first N attempts, exit with a chosen code, sleep, or write a termination
message, all driven by flags so each test's DAG reads as a specification.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True, help="append one JSON line per start and end")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--fail-attempts", type=int, default=0, help="fail while attempt <= N")
    parser.add_argument(
        "--fail-shards", default="", help="only these shards (comma list) fail, if given"
    )
    parser.add_argument("--exit-code", type=int, default=1)
    parser.add_argument("--message", default="")
    args = parser.parse_args()

    attempt = int(os.environ.get("EXTRACTION_ATTEMPT", "0"))
    shard = os.environ.get("SHARD_INDEX", "0")
    record = {
        "node": os.environ.get("EXTRACTION_NODE"),
        "stage": os.environ.get("EXTRACTION_STAGE"),
        "attempt": attempt,
        "shard": shard,
        "shard_count": os.environ.get("SHARD_COUNT"),
        "run": os.environ.get("EXTRACTION_RUN"),
        "pid": os.getpid(),
    }
    with open(args.log, "a", encoding="utf-8") as log:
        log.write(json.dumps({**record, "event": "start", "t": time.time()}) + "\n")
    time.sleep(args.sleep)
    failing_shards = {s for s in args.fail_shards.split(",") if s}
    fail = attempt <= args.fail_attempts and (not failing_shards or shard in failing_shards)
    with open(args.log, "a", encoding="utf-8") as log:
        log.write(json.dumps({**record, "event": "end", "failed": fail, "t": time.time()}) + "\n")
    if fail:
        message = args.message or f"{record['node']} failed on attempt {attempt}"
        path = os.environ.get("TERMINATION_MESSAGE_PATH")
        if path:
            with open(path, "w", encoding="utf-8") as out:
                out.write(message)
        print(message, file=sys.stderr)
        return args.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
