"""A minimal kopf operator for the kopf test: it reacts to the conformance suite's Gizmos.

Loaded by `kopf run` inside `KopfRunner`; it finds the API server through the kubeconfig named by
`KUBECONFIG` at login time (kopf's own client login reads the variable only once, at import).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
import kubernetes


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=os.environ["KUBECONFIG"], client_configuration=config
    )
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


GROUP, VERSION, PLURAL = "conformance.extraction.dev", "v1", "gizmos"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 5
    settings.watching.client_timeout = 10
    settings.watching.reconnect_backoff = 0.1
    settings.posting.level = logging.INFO


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger, **_: Any) -> None:
    patch.status["phase"] = "Running"
    patch.status["message"] = "created by kopf"
    logger.info("test-operator saw the creation")
    kopf.info(body, reason="Created", message="test-operator saw the creation")


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.parallelism")
def updated(new: Any, patch: kopf.Patch, logger: logging.Logger, **_: Any) -> None:
    patch.status["message"] = f"parallelism is now {new}"
    logger.info("test-operator saw the update")


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, logger: logging.Logger, **_: Any) -> None:
    logger.info(f"test-operator saw the deletion of {name}")
