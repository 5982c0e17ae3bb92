"""What every example stage shares: its identity from the env, its exit codes, its one-line report.

The operator tells a stage who it is through env vars (DESIGN.md section 2) and learns how it went
from the exit code and the termination message. `run_stage` turns a stage body (a function of the
context returning a summary) into that protocol, so each stage module holds only its own logic:

- exit 0: done; the summary is the termination message;
- exit 1: a failure worth retrying (an I/O error, the deliberate flaky failure);
- exit 2: the input is missing or corrupt; retrying cannot help, so the example manifests list 2 in
  `nonRetryableExitCodes` and the run fails at once with the message naming the file and the fix;
- exit 75: a circuit breaker was open (`CircuitOpen` from `extraction_operator.stage`), so the
  stage did not call its provider; the operator parks the node as `Blocked` without spending a
  retry and launches it again after the breaker's recovery time.

A stage that fails because its provider failed (a `StageTransientError` raised `from` the provider
error the circuit counted) also gets the SDK's provider-failure marker under its message, so the
operator does not spend the node's retries while the circuit is open.

Nothing here may print a traceback for bad input: a person reads these messages in `kubectl get`.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from extraction_operator.api import constants
from extraction_operator.breaker.runtime import CircuitOpen
from extraction_operator.stage.termination import mark_provider_failures

EXIT_OK = 0
EXIT_RETRYABLE = 1
EXIT_BAD_INPUT = 2
EXIT_CIRCUIT_OPEN = constants.EXIT_CIRCUIT_OPEN

# Kubernetes reads at most 4 KiB of a termination message; the operator keeps 1 KiB of it.
MAX_TERMINATION_MESSAGE = 1000
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
ENV_TERMINATION_MESSAGE_PATH = "TERMINATION_MESSAGE_PATH"
# How many attempts of a stage fail on purpose, to show retries in the demo (0: none).
ENV_FLAKY_FAILURES = "FLAKY_FAILURES"


class StageInputError(Exception):
    """The stage's input (files or env) is missing or corrupt: exit 2, not worth retrying."""


class StageTransientError(Exception):
    """A failure a later attempt may not meet: exit 1, so the operator retries with backoff."""


@dataclass(frozen=True)
class StageContext:
    """Who this stage process is and where its files live, read once from the env."""

    run: str
    namespace: str
    run_uid: str
    stage: str
    node: str
    attempt: int
    shard_index: int
    shard_count: int
    workspace: Path
    env: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StageContext:
        """Read the operator's env; a missing workspace or a malformed number is a bad input."""
        workspace = env.get(constants.ENV_WORKSPACE, "")
        if not workspace:
            raise StageInputError(
                f"{constants.ENV_WORKSPACE} is not set; give the run a spec.workspace "
                "(or export it when running the stage by hand)"
            )
        shard_count = _int_env(env, constants.ENV_SHARD_COUNT, default=1, minimum=1)
        shard_index = _int_env(env, constants.ENV_SHARD_INDEX, default=0, minimum=0)
        if shard_index >= shard_count:
            raise StageInputError(
                f"{constants.ENV_SHARD_INDEX}={shard_index} must be below "
                f"{constants.ENV_SHARD_COUNT}={shard_count}"
            )
        stage = env.get(constants.ENV_STAGE, "") or "stage"
        return cls(
            run=env.get(constants.ENV_RUN, "") or "local",
            namespace=env.get(constants.ENV_NAMESPACE, "") or "default",
            run_uid=env.get(constants.ENV_RUN_UID, ""),
            stage=stage,
            node=env.get(constants.ENV_NODE, "") or stage,
            attempt=_int_env(env, constants.ENV_ATTEMPT, default=1, minimum=1),
            shard_index=shard_index,
            shard_count=shard_count,
            workspace=Path(workspace),
            env=env,
        )

    @property
    def output_dir(self) -> Path:
        """This run's directory in the shared workspace (see `run_output_dir`)."""
        return run_output_dir(self.workspace, self.run, self.run_uid)


def run_output_dir(workspace: Path, run: str, run_uid: str) -> Path:
    """`<workspace>/<run>-<uid prefix>`: several runs may share one volume, and a run deleted and
    created again under the same name gets a fresh directory instead of the old run's files."""
    return workspace / (f"{run}-{run_uid[:8]}" if run_uid else run)


def _int_env(env: Mapping[str, str], name: str, *, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StageInputError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise StageInputError(f"{name}={value} must be at least {minimum}")
    return value


def fail_on_purpose_if_asked(context: StageContext) -> None:
    """Fail the first `FLAKY_FAILURES` attempts, to show a retry.

    The decision uses `EXTRACTION_ATTEMPT`, which the operator derives from durable state (the Job
    name), so it is the same after an operator restart: attempt 1 fails and attempt 2 succeeds no
    matter how often anything is restarted in between."""
    flaky = _int_env(context.env, ENV_FLAKY_FAILURES, default=0, minimum=0)
    if context.attempt <= flaky:
        raise StageTransientError(
            f"deliberate failure of attempt {context.attempt} "
            f"({ENV_FLAKY_FAILURES}={flaky}); a retry will succeed"
        )


def write_termination_message(message: str, env: Mapping[str, str]) -> None:
    """Write one line where Kubernetes (or the local job runner) picks up the termination message.

    Best effort: a stage must not fail because its report could not be written."""
    line = " ".join(message.split())[:MAX_TERMINATION_MESSAGE]
    path = _termination_path(env)
    if not path:
        return
    try:
        Path(path).write_text(line + "\n", encoding="utf-8")
    except OSError as error:
        print(f"could not write the termination message to {path}: {error}", file=sys.stderr)


StageBody = Callable[[StageContext], str]


def run_stage(body: StageBody, env: Mapping[str, str] | None = None) -> int:
    """Run one stage body under the exit-code protocol above and return the exit code.

    The body returns a one-line summary of what it produced; that line is printed and becomes the
    termination message, so `kubectl get xrun -o yaml` shows what each stage did."""
    environment = os.environ if env is None else env
    try:
        context = StageContext.from_env(environment)
        fail_on_purpose_if_asked(context)
        summary = body(context)
    except StageInputError as error:
        return _report(f"bad input: {error}", EXIT_BAD_INPUT, environment, error)
    except StageTransientError as error:
        return _report(str(error), EXIT_RETRYABLE, environment, error)
    except CircuitOpen as error:
        return _report(
            f"{error}; not calling the provider (exit {EXIT_CIRCUIT_OPEN}: the operator retries "
            "after the recovery time)",
            EXIT_CIRCUIT_OPEN,
            environment,
        )
    except OSError as error:
        return _report(f"I/O error: {error}", EXIT_RETRYABLE, environment, error)
    except Exception as error:  # a bug in the stage: keep the trace in the log, the gist in status
        traceback.print_exc()
        return _report(
            f"internal error: {type(error).__name__}: {error}", EXIT_RETRYABLE, environment, error
        )
    print(summary)
    write_termination_message(summary, environment)
    return EXIT_OK


def _report(
    message: str, code: int, env: Mapping[str, str], error: BaseException | None = None
) -> int:
    """Print and write `message`; when `error` carries a provider failure a circuit counted, the
    SDK appends its marker under the message (the same rule as `extraction_operator.stage`)."""
    print(message, file=sys.stderr)
    write_termination_message(message, env)
    path = _termination_path(env)
    if error is not None and path:
        mark_provider_failures(error, path)
    return code


def _termination_path(env: Mapping[str, str]) -> str:
    """Where the message goes: the env's path, else the default when it exists, else nowhere."""
    path = env.get(ENV_TERMINATION_MESSAGE_PATH, "")
    if not path and Path(DEFAULT_TERMINATION_MESSAGE_PATH).exists():
        path = DEFAULT_TERMINATION_MESSAGE_PATH
    return path
