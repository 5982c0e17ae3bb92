"""`extraction-operator guard --circuit llm [--failure-exit-codes 3,4] -- CMD ARGS...`

Shared circuit breakers for stages that are not written in Python. Before starting CMD, every named
circuit is asked for admission: if any is open (and this process did not get its probe), the guard
exits 75 at once without running CMD, and the operator parks the node as `Blocked`. Otherwise CMD
runs with SIGTERM/SIGINT/SIGHUP forwarded to it; exit 0 records a success on every circuit, an
exit code listed in `--failure-exit-codes` records a failure, any other code records nothing (it
says nothing about the provider) and frees a probe lease. CMD's exit code is passed through
(128+N when CMD was killed by signal N, as shells do).

A failure exit code is the only way a non-Python program can say "the provider failed", so after
recording it the guard also appends the provider-failure marker (each circuit with the generation
its admission saw) to whatever CMD wrote to the termination message: the operator then does not
spend the node's retries when that failure was part of an outage.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from extraction_operator.api.constants import EXIT_CIRCUIT_OPEN
from extraction_operator.breaker.machine import Ticket
from extraction_operator.breaker.runtime import CircuitOpen, SharedBreaker

from .environment import get_breaker
from .termination import append_provider_failures, write_termination_message

EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class UsageError(ValueError):
    pass


def parse_exit_codes(text: str | None) -> frozenset[int]:
    """`"3,4"` -> {3, 4}; empty -> {}. Raises UsageError naming the flag and the bad item."""
    codes: set[int] = set()
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            code = int(item)
        except ValueError:
            raise UsageError(
                f"--failure-exit-codes: {item!r} is not an integer; "
                "give comma-separated exit codes such as 3,4"
            ) from None
        if not 1 <= code <= 255:
            raise UsageError(
                f"--failure-exit-codes: {code} is out of range; exit codes that mark a provider "
                "failure are 1..255 (0 is success)"
            )
        if code == EXIT_CIRCUIT_OPEN:
            raise UsageError(
                f"--failure-exit-codes: {code} is reserved for 'circuit open, did not try'"
            )
        codes.add(code)
    return frozenset(codes)


def command_of(cmd: Sequence[str] | None) -> list[str]:
    words = list(cmd or [])
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise UsageError("guard: no command given; usage: guard --circuit NAME -- CMD [ARGS...]")
    return words


def _admit_all(breaker: SharedBreaker, circuits: Sequence[str]) -> list[Ticket]:
    tickets: list[Ticket] = []
    try:
        for name in circuits:
            tickets.append(breaker.begin(name))
    except CircuitOpen:
        for ticket in tickets:
            breaker.release(ticket)
        raise
    return tickets


def _run_forwarding_signals(command: list[str]) -> int:
    child = subprocess.Popen(command)

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
        previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def run_guard(args: argparse.Namespace) -> int:
    try:
        circuits = list(dict.fromkeys(args.circuits or []))
        if not circuits:
            raise UsageError("guard: give at least one --circuit NAME")
        failure_codes = parse_exit_codes(args.failure_exit_codes)
        command = command_of(args.cmd)
    except UsageError as exc:
        sys.stderr.write(f"extraction-operator {exc}\n")
        return EXIT_USAGE

    breaker = get_breaker()
    try:
        tickets = _admit_all(breaker, circuits)
    except CircuitOpen as exc:
        message = f"{exc}; not running {command[0]}, exiting {EXIT_CIRCUIT_OPEN}"
        write_termination_message(message)
        sys.stderr.write(f"extraction-operator guard: {message}\n")
        return EXIT_CIRCUIT_OPEN

    try:
        code = _run_forwarding_signals(command)
    except OSError as exc:
        for ticket in tickets:
            breaker.release(ticket)
        sys.stderr.write(f"extraction-operator guard: cannot run {command[0]!r}: {exc}\n")
        return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_NOT_EXECUTABLE

    for ticket in tickets:
        if code == 0:
            breaker.succeed(ticket)
        elif code in failure_codes:
            breaker.fail(ticket, f"{command[0]} exited {code}")
        else:
            breaker.release(ticket)
    if code in failure_codes:
        append_provider_failures(
            {ticket.circuit: ticket.generation for ticket in tickets},
            f"{command[0]} exited {code}",
        )
    return code
