"""Where a circuit's thresholds come from, in order: the `EXTRACTION_CIRCUITS` env the operator sets
(`{"llm": {"failureThreshold": 5, ...}}`), the run's `spec.circuitBreakers`, then the defaults.

Bad input never stops a stage: each unusable entry is reported with the field at fault, and the
next source (ultimately the defaults) is used instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from extraction_operator.api.models import CircuitBreakerConfig

logger = logging.getLogger(__name__)


def _validation_summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
    )


def parse_config_map(raw: object, source: str) -> tuple[dict[str, CircuitBreakerConfig], list[str]]:
    """Validate `{name: CircuitBreakerConfig-by-alias}`; return the good entries and problems."""
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [f"{source} must be a JSON object of circuit configs, got {type(raw).__name__}"]
    configs: dict[str, CircuitBreakerConfig] = {}
    problems: list[str] = []
    for name, value in raw.items():
        try:
            configs[str(name)] = CircuitBreakerConfig.model_validate(value)
        except ValidationError as exc:
            problems.append(
                f"{source}[{name!r}] is invalid ({_validation_summary(exc)}); using defaults"
            )
    return configs, problems


def parse_env_configs(raw: str | None) -> tuple[dict[str, CircuitBreakerConfig], list[str]]:
    if raw is None or not raw.strip():
        return {}, []
    try:
        decoded: Any = json.loads(raw)
    except ValueError as exc:
        return {}, [f"EXTRACTION_CIRCUITS is not valid JSON ({exc}); ignoring it"]
    return parse_config_map(decoded, "EXTRACTION_CIRCUITS")


class ConfigResolver:
    """Resolves and memoises each circuit's config, reporting each problem once."""

    def __init__(
        self,
        env_configs: Mapping[str, CircuitBreakerConfig],
        spec_configs: Mapping[str, Any] | None = None,
    ) -> None:
        self._env = dict(env_configs)
        self._spec_raw = spec_configs
        self._spec: dict[str, CircuitBreakerConfig] | None = None
        self._resolved: dict[str, CircuitBreakerConfig] = {}

    def offer_spec(self, spec_configs: Mapping[str, Any] | None) -> None:
        """The run's spec.circuitBreakers, once the store has read the run."""
        if self._spec is None and spec_configs is not None:
            self._spec_raw = spec_configs

    def get(self, name: str) -> CircuitBreakerConfig:
        if name in self._resolved:
            return self._resolved[name]
        config = self._env.get(name)
        if config is None:
            if self._spec is None and self._spec_raw is not None:
                self._spec, problems = parse_config_map(self._spec_raw, "spec.circuitBreakers")
                for problem in problems:
                    logger.warning("circuit breakers: %s", problem)
            config = (self._spec or {}).get(name)
        if config is None:
            if self._spec_raw is None:
                # The run has not been read yet: use the defaults now, but look again later.
                return CircuitBreakerConfig()
            config = CircuitBreakerConfig()
        self._resolved[name] = config
        return config
