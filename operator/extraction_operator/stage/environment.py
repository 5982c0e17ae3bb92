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
from extraction_operator.breaker.store import DEFAULT_MAX_ATTEMPTS, BreakerStore

logger = logging.getLogger(__name__)

ENV_SCOPE = "EXTRACTION_BREAKER_SCOPE"
ENV_MAX_ATTEMPTS = "EXTRACTION_BREAKER_MAX_ATTEMPTS"

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


def _max_attempts(environ: Mapping[str, str]) -> int:
    """The compare-and-swap retry budget; tunable for very contended runs (or tests)."""
    raw = environ.get(ENV_MAX_ATTEMPTS)
    if raw is None:
        return DEFAULT_MAX_ATTEMPTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        logger.warning(
            "circuit breakers: %s=%r must be an integer in 1..100; using %d",
            ENV_MAX_ATTEMPTS,
            raw,
            DEFAULT_MAX_ATTEMPTS,
        )
        return DEFAULT_MAX_ATTEMPTS
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
        api if api is not None else _run_api(env, api_client), max_attempts=_max_attempts(env)
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
