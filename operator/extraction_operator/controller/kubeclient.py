"""One source of credentials for both API clients in the process: kopf's and the `kubernetes` one.

kopf watches and patches through its own aiohttp session; the operator's own writes (Jobs, status,
Events) go through the `kubernetes` client. Both must talk to the same server with the same
identity, including when the operator is embedded next to the local cluster with an explicit
kubeconfig path, so the configuration is built once here instead of each library guessing.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client, config

logger = logging.getLogger(__name__)

# The operator runs several workers that each create Jobs and patch status concurrently.
CONNECTION_POOL_SIZE = 32


def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """The in-cluster service account when no kubeconfig is named and one is mounted."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            logger.debug("Using the in-cluster service account.")
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return configuration


def new_api_client(configuration: client.Configuration) -> client.ApiClient:
    api = client.ApiClient(configuration)
    api.user_agent = "extraction-operator"
    return api


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """Translate a client configuration into what kopf's login handler must return."""
    header: str | None = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme: str | None = None
    token: str | None = None
    if header:
        parts = header.split(" ", 1)
        scheme, token = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    extra: dict[str, Any] = {}
    if configuration.username:
        extra["username"] = configuration.username
        extra["password"] = configuration.password
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        priority=100,
        **extra,
    )
