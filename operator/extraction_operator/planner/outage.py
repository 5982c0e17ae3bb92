"""Provider outages: which failures they excuse, and who may probe a recovering circuit.

Two rules keep a run alive through an outage of any length (docs/circuit-breakers.md, "Outages
do not spend retries"):

- A failed attempt whose stage ended on a provider failure its breaker counted (the SDK's marker
  in the termination message: circuit -> the generation the failing call was admitted under) is
  the outage's, not the stage's, when that circuit has opened since: its generation moved on, or
  it is not closed. It uses no retry. While the circuit is still closed in that same generation
  the verdict is open (the failure may be one of those about to open it), so the node waits out
  its backoff and is judged again when the retry is due.
- A circuit whose recovery time has passed wants exactly one probe. While one of the run's nodes
  guarded by it is running, that pod is the prober (it either claims the probe or has it), and
  every other node guarded by it stays `Blocked`; when none is running, the first launchable one
  starts. The others launch once the circuit closes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

from .types import CircuitGate

# A node parked because its attempt failed on a provider whose circuit then opened.
PROVIDER_OUTAGE = "ProviderOutage"


class Verdict(enum.Enum):
    OUTAGE = "outage"  # the circuit opened since the failure: no retry used
    UNDECIDED = "undecided"  # still closed in the failure's generation: judge again later
    COUNTS = "counts"  # not a provider failure the breaker can vouch for


def _opened_since(gate: CircuitGate, generation: int) -> bool:
    return gate.generation > generation or (
        gate.generation == generation and gate.state != "closed"
    )


def outage_circuits(failures: Mapping[str, int], gates: Mapping[str, CircuitGate]) -> list[str]:
    """The circuits (sorted) whose opening excuses these provider failures."""
    return sorted(
        name
        for name, generation in failures.items()
        if (gate := gates.get(name)) is not None and _opened_since(gate, generation)
    )


def attribute(failures: Mapping[str, int], gates: Mapping[str, CircuitGate]) -> Verdict:
    """Judge a provider failure (circuit -> admitted generation) against the circuits now.

    A circuit the run does not declare vouches for nothing; one whose generation is older than
    the failure's was reset or rewritten since, and cannot tell either."""
    if outage_circuits(failures, gates):
        return Verdict.OUTAGE
    pending = any(
        (gate := gates.get(name)) is not None and gate.generation == generation
        for name, generation in failures.items()
    )
    return Verdict.UNDECIDED if pending else Verdict.COUNTS


def probing_circuits(circuits: Sequence[str], gates: Mapping[str, CircuitGate]) -> tuple[str, ...]:
    """The circuits of a stage that want a probe now (half-open, nobody holds the lease)."""
    return tuple(
        name
        for name in circuits
        if (gate := gates.get(name)) is not None and gate.state == "half-open"
    )


class ProbeSlots:
    """One running pod per recovering circuit, across the run's nodes."""

    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    def occupy(self, circuits: Iterable[str], node_key: str) -> None:
        for name in circuits:
            self._holders.setdefault(name, node_key)

    def holder(self, circuits: Iterable[str]) -> tuple[str, str] | None:
        """(circuit, node) of the first of `circuits` whose probe slot is taken, or None."""
        for name in circuits:
            if name in self._holders:
                return name, self._holders[name]
        return None
