"""The operator's reading of a run's circuit-breaker annotation.

Stage pods own the breaker document (they write it with compare-and-swap); the operator only reads
it: to hold back stages whose circuit is open until the recovery time, to tell people about every
transition (an Event and a metric), and to mirror the state into `status.circuits` for
`kubectl describe`. A malformed annotation is reported once per distinct value and treated as
all-closed; the next stage write replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from extraction_operator.api.constants import ANNOTATION_BREAKERS
from extraction_operator.api.models import CircuitBreakerConfig
from extraction_operator.breaker import circuit_view, parse_document, summarize
from extraction_operator.breaker.configs import parse_config_map
from extraction_operator.metrics import Metrics
from extraction_operator.planner import CircuitGate

logger = logging.getLogger(__name__)

RunKey = tuple[str, str]
EventSink = Callable[[Mapping[str, Any], str, str, str], None]


def as_mapping(value: Any) -> Mapping[str, Any]:
    """Objects from the API are untrusted: anything that is not a mapping reads as empty."""
    return value if isinstance(value, Mapping) else {}


def _configs(spec: Mapping[str, Any]) -> dict[str, CircuitBreakerConfig]:
    """Every declared circuit; an invalid config reads as the defaults here because spec
    problems are reported (as `Stalled`) by the planner, not by the breaker reading."""
    raw = spec.get("circuitBreakers")
    if not isinstance(raw, Mapping):
        return {}
    configs, _ = parse_config_map({k: v or {} for k, v in raw.items()}, "spec.circuitBreakers")
    return {str(name): configs.get(str(name), CircuitBreakerConfig()) for name in raw}


class CircuitReading:
    """What one reconcile learnt from the annotation: gates for the planner, and the summary to
    mirror into status."""

    def __init__(self) -> None:
        self.gates: dict[str, CircuitGate] = {}
        self.summaries: dict[str, Any] = {}


class CircuitTracker:
    """Derives gates for the planner and reports transitions between consecutive readings."""

    def __init__(
        self, metrics: Metrics, post_event: EventSink, clock: Callable[[], datetime]
    ) -> None:
        self.metrics = metrics
        self.post_event = post_event
        self.clock = clock
        self._last: dict[RunKey, dict[str, str]] = {}
        self._reported_malformed: dict[RunKey, str] = {}

    def forget(self, key: RunKey) -> None:
        self._last.pop(key, None)
        self._reported_malformed.pop(key, None)
        self._update_open_gauge()

    def read(self, key: RunKey, run: Mapping[str, Any]) -> CircuitReading:
        meta = run.get("metadata") or {}
        annotation = (meta.get("annotations") or {}).get(ANNOTATION_BREAKERS)
        spec, status = as_mapping(run.get("spec")), as_mapping(run.get("status"))
        now = self.clock().timestamp()
        # With `now`: a timestamp in the future beyond clock skew is untrusted input, not a plan.
        document, problem = parse_document(annotation, now=now)
        if problem is not None and self._reported_malformed.get(key) != (annotation or ""):
            self._reported_malformed[key] = annotation or ""
            logger.warning("Run %s/%s: circuit-breaker annotation ignored: %s", *key, problem)
            self.post_event(
                run,
                "Warning",
                "CircuitAnnotationInvalid",
                f"annotation ignored and treated as closed ({problem}); "
                "the next stage write will rewrite it",
            )
        reading = CircuitReading()
        mirrored = as_mapping(status.get("circuits"))
        states: dict[str, str] = {}
        for name, config in _configs(spec).items():
            current = circuit_view(document, name, config, now)
            retry_at = (
                None
                if current.retry_at is None
                else datetime.fromtimestamp(current.retry_at, tz=UTC)
            )
            # A half-open circuit whose probe lease someone else holds admits nobody else until the
            # lease ends: to the planner that is an open circuit with a known retry time.
            gate_state = "open" if retry_at is not None else current.state
            reading.gates[name] = CircuitGate(
                state=gate_state, retry_at=retry_at, generation=current.record.generation
            )
            reading.summaries[name] = summarize(current.record, current.retry_at).model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
            stored = current.record.state
            states[name] = stored
            previous_mirror = mirrored.get(name)
            previous = self._last.get(key, {}).get(name) or (
                previous_mirror.get("state") if isinstance(previous_mirror, Mapping) else "closed"
            )
            if previous != stored:
                self._report_transition(run, name, stored, current.record.last_error)
        self._last[key] = states
        self._update_open_gauge()
        return reading

    def _report_transition(
        self, run: Mapping[str, Any], name: str, state: str, last_error: str | None
    ) -> None:
        self.metrics.circuit_transitions.labels(name, state).inc()
        if state == "open":
            detail = f": {last_error}" if last_error else ""
            self.post_event(run, "Warning", "CircuitOpened", f"circuit {name} opened{detail}")
        elif state == "half-open":
            self.post_event(
                run, "Normal", "CircuitHalfOpen", f"circuit {name} half-open: one probe allowed"
            )
        else:
            self.post_event(run, "Normal", "CircuitClosed", f"circuit {name} closed")

    def _update_open_gauge(self) -> None:
        open_runs = sum(
            1 for states in self._last.values() if any(s != "closed" for s in states.values())
        )
        self.metrics.runs_with_open_circuit.set(open_runs)
