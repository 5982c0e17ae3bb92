"""Operator settings gathered from the command line (or set directly when embedded)."""

from __future__ import annotations

import argparse
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from kubernetes import client

from .kubeclient import load_configuration


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _instance_id() -> str:
    """`POD_ID` (the pod name, from the downward API, as kopf uses it), else hostname/pid:
    unique per operator process."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}"


@dataclass
class OperatorOptions:
    namespaces: list[str] = field(default_factory=list)  # empty: cluster-wide
    kubeconfig: str | None = None  # None: in-cluster, else $KUBECONFIG / ~/.kube/config
    metrics_port: int = 8080
    liveness: str = "http://0.0.0.0:8081/healthz"
    log_level: str = "info"
    log_format: str = "plain"
    peering: str = ""
    priority: int = 0
    resync_seconds: float = 30.0
    workers: int = 16  # reconcile passes are I/O-bound: a few per core keep the queue short
    # Sent to the API server as the watch's `timeoutSeconds` query parameter, which it parses as
    # an integer: a float here (`270.0`) makes every watch a 400 Bad Request.
    watch_server_timeout: int = 270
    shutdown_timeout: float = 20.0
    drain_seconds: float = 10.0  # how long SIGTERM waits for reconcile passes in flight
    peering_lifetime: int = 20
    clock: Callable[[], datetime] = _utc_now
    instance: str = field(default_factory=_instance_id)

    def __post_init__(self) -> None:
        # An embedding caller (tests, the demo) may pass any number: integer query parameters
        # must reach the API server as integers, so refuse a fractional one with a clear error.
        value = self.watch_server_timeout
        if isinstance(value, bool) or not float(value).is_integer() or value <= 0:
            raise ValueError(
                f"watch_server_timeout must be a positive whole number of seconds, got {value!r}"
            )
        self.watch_server_timeout = int(value)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OperatorOptions:
        return cls(
            namespaces=list(args.namespaces or []),
            kubeconfig=args.kubeconfig,
            metrics_port=args.metrics_port,
            liveness=args.liveness,
            log_level=args.log_level,
            log_format=args.log_format,
            peering=args.peering,
            priority=args.priority if args.priority is not None else random.randint(1, 2**30),
            resync_seconds=args.resync_seconds,
        )

    @cached_property
    def _configuration(self) -> client.Configuration:
        return load_configuration(self.kubeconfig)

    def client_configuration(self) -> client.Configuration:
        """Loaded once: kopf's login and our REST client must agree on server and identity."""
        return self._configuration
