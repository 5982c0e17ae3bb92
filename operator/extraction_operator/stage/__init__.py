"""The stage SDK: shared circuit breakers for code running inside an ExtractionRun stage.

    from extraction_operator.stage import circuit, run_stage

    @circuit("llm")
    def ask(prompt): return client.chat.completions.create(...)

    def main() -> int: ...
    raise SystemExit(run_stage(main))

A stage with an exit protocol of its own calls `mark_provider_failures(exc)` where it ends on an
exception (run_stage does), so that the operator can tell a provider outage from a bug.

See docs/circuit-breakers.md for how it works and how to combine it with provider SDK retries.
"""

from __future__ import annotations

from extraction_operator.api.constants import EXIT_CIRCUIT_OPEN
from extraction_operator.breaker.classify import Classifier, counts_as_failure, default_classifier
from extraction_operator.breaker.runtime import CircuitOpen, SharedBreaker

from .environment import breaker_from_env, get_breaker, set_breaker
from .failures import provider_failures_in
from .sdk import Circuit, circuit
from .termination import (
    install_exit_hook,
    mark_provider_failures,
    run_stage,
    write_termination_message,
)

__all__ = [
    "EXIT_CIRCUIT_OPEN",
    "Circuit",
    "CircuitOpen",
    "Classifier",
    "SharedBreaker",
    "breaker_from_env",
    "circuit",
    "counts_as_failure",
    "default_classifier",
    "get_breaker",
    "install_exit_hook",
    "mark_provider_failures",
    "provider_failures_in",
    "run_stage",
    "set_breaker",
    "write_termination_message",
]
