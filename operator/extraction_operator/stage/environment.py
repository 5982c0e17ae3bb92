"""Build the process-wide breaker from the env the operator gives every stage container.

`EXTRACTION_RUN` and `EXTRACTION_NAMESPACE` name the run whose annotation holds the shared state,
`EXTRACTION_RUN_UID` guards against a recreated run of the same name, and `EXTRACTION_CIRCUITS`
carries this stage's circuit configs. The API is reached in-cluster or through `KUBECONFIG`.

Outside the operator (no `EXTRACTION_RUN`), or with `EXTRACTION_BREAKER_SCOPE=local`, or when no
cluster config can be loaded, the breaker is process-local (kept in memory): the code still runs
and still fails fast after repeated failures, it just does not share state with other pods.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from extraction_operator.api.constants import (
    ENV_CIRCUITS,
    ENV_NAMESPACE,
    ENV_RUN,
    ENV_RUN_UID,
)
from extraction_operator.breaker.api import RunApi
from extraction_operator.breaker.configs import ConfigResolver, parse_env_configs
from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import SharedBreaker, default_holder
from extraction_operator.breaker.store import (
    DEFAULT_ENROLLMENT_WAIT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_SECONDS,
    BreakerStore,
)

logger = logging.getLogger(__name__)

ENV_SCOPE = "EXTRACTION_BREAKER_SCOPE"
ENV_MAX_ATTEMPTS = "EXTRACTION_BREAKER_MAX_ATTEMPTS"
ENV_MAX_SECONDS = "EXTRACTION_BREAKER_MAX_SECONDS"
ENV_ENROLLMENT_WAIT = "EXTRACTION_BREAKER_ENROLLMENT_SECONDS"

_lock = threading.Lock()
_breaker: SharedBreaker | None = None


def _run_api(environ: Mapping[str, str], api_client: Any) -> RunApi:
    run, namespace = environ.get(ENV_RUN), environ.get(ENV_NAMESPACE)
    if environ.get(ENV_SCOPE, "").lower() == "local":
        return InMemoryRunApi(description="process-local (EXTRACTION_BREAKER_SCOPE=local)")
    if not run or not namespace:
        logger.info(
            "circuit breakers are process-local: %s/%s are not set (not started by the operator)",
            ENV_RUN,
            ENV_NAMESPACE,
        )
        return InMemoryRunApi(description="process-local")
    from extraction_operator.breaker.kube import KubernetesRunApi

    try:
        return KubernetesRunApi(
            namespace, run, uid=environ.get(ENV_RUN_UID) or None, api_client=api_client
        )
    except Exception as exc:  # no in-cluster config and no kubeconfig, or a broken one
        logger.warning(
            "circuit breakers are process-local: cannot configure a Kubernetes client (%s)", exc
        )
        return InMemoryRunApi(description="process-local (no cluster config)")


def _tunable(
    environ: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    """A number from the env within [low, high]; anything else is reported and the default used.
    Tunables of the bookkeeping's budgets, for very contended runs (or tests)."""
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also NaN
        logger.warning(
            "circuit breakers: %s=%r must be a number in %g..%g; using %g",
            name,
            raw,
            low,
            high,
            default,
        )
        return default
    return value


def breaker_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    api_client: Any = None,
    api: RunApi | None = None,
) -> SharedBreaker:
    """A breaker for this process; `api_client` or `api` may be injected (tests, custom wiring)."""
    env = os.environ if environ is None else environ
    configs, problems = parse_env_configs(env.get(ENV_CIRCUITS))
    for problem in problems:
        logger.warning("circuit breakers: %s", problem)
    store = BreakerStore(
        api if api is not None else _run_api(env, api_client),
        max_attempts=int(_tunable(env, ENV_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS, 1, 100)),
        max_seconds=_tunable(env, ENV_MAX_SECONDS, DEFAULT_MAX_SECONDS, 1, 3600),
        enrollment_wait=_tunable(env, ENV_ENROLLMENT_WAIT, DEFAULT_ENROLLMENT_WAIT, 0, 3600),
    )
    return SharedBreaker(store, ConfigResolver(configs), holder=default_holder())


def get_breaker() -> SharedBreaker:
    """The process-wide breaker, built from the env on first use."""
    global _breaker
    with _lock:
        if _breaker is None:
            _breaker = breaker_from_env()
        return _breaker


def set_breaker(breaker: SharedBreaker | None) -> None:
    """Replace the process-wide breaker (None: rebuild from the env on next use)."""
    global _breaker
    with _lock:
        _breaker = breaker
