"""`extraction-operator run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Collection
from typing import Any

import kopf

from extraction_operator.metrics import Metrics

from .handlers import OperatorState, build_registry, configure_settings
from .options import OperatorOptions

logger = logging.getLogger(__name__)

_LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


def configure_logging(options: OperatorOptions) -> None:
    kopf.configure(
        debug=options.log_level == "debug",
        quiet=options.log_level in ("warning", "error"),
        log_format=_LOG_FORMATS[options.log_format],
    )
    if options.log_level == "error":
        logging.getLogger().setLevel(logging.ERROR)


def prepare(
    options: OperatorOptions,
) -> tuple[OperatorState, kopf.OperatorRegistry, kopf.OperatorSettings]:
    """Everything `kopf.operator()` needs, built without touching kopf's global registry."""
    metrics = Metrics()
    state = OperatorState(options=options, metrics=metrics)
    metrics.watch_run_phases(state.run_phases)
    settings = kopf.OperatorSettings()
    configure_settings(settings, options)
    return state, build_registry(state), settings


def scope(options: OperatorOptions) -> tuple[bool, Collection[str]]:
    """kopf's (clusterwide, namespaces) pair."""
    return (not options.namespaces), tuple(options.namespaces)


async def serve(
    options: OperatorOptions,
    *,
    stop_flag: Any = None,
    ready_flag: Any = None,
    state_out: list[OperatorState] | None = None,
) -> None:
    state, registry, settings = prepare(options)
    if state_out is not None:
        state_out.append(state)
    if options.metrics_port:
        state.metrics.serve(options.metrics_port)
    clusterwide, namespaces = scope(options)
    await kopf.operator(
        registry=registry,
        settings=settings,
        clusterwide=clusterwide,
        namespaces=namespaces,
        liveness_endpoint=options.liveness or None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        # The same identity kopf records in the peering object and we stamp in status, so the
        # peering gate can recognise its own record.
        identity=options.instance,  # type: ignore[arg-type]  # kopf's NewType is not exported
    )


def run_operator(args: argparse.Namespace) -> int:
    options = OperatorOptions.from_args(args)
    configure_logging(options)
    logger.info(
        "Starting extraction-operator (%s)",
        "cluster-wide" if not options.namespaces else ", ".join(options.namespaces),
    )
    asyncio.run(serve(options))
    return 0
