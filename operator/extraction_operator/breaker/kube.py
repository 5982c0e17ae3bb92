"""`RunApi` over the official `kubernetes` client: GET the run, merge-patch its annotation.

The write is a JSON merge patch carrying `metadata.resourceVersion`, which the API server treats as
a precondition and answers 409 on mismatch; a 422 (what a JSON-patch `test` op answers) is treated
the same way so either patch style can sit behind this class. The run's UID, when known, is checked
on read so a breaker never writes into a different run that reuses the name. A 401 or 403 is
`AccessDenied` (with the identity the API server names), never "unreachable": the pod's
ServiceAccount lacks the stage Role, and only a change of RBAC or account fixes that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from extraction_operator.api.constants import ANNOTATION_BREAKERS, GROUP, PLURAL, VERSION

from .api import ApiUnavailable, RunSnapshot, WriteConflict
from .forbidden import denied

CONFLICT_STATUSES = frozenset({409, 422})
DENIED_STATUSES = frozenset({401, 403})
DEFAULT_REQUEST_TIMEOUT = (2.0, 3.0)  # (connect, read) seconds: a hanging API must not hang a stage


def load_api_client() -> Any:
    """An ApiClient configured in-cluster, else from KUBECONFIG / ~/.kube/config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # Pass KUBECONFIG explicitly: the client reads it once at import time otherwise.
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None,
            client_configuration=configuration,
            persist_config=False,
        )
    # The store retries with its own budget and backoff; urllib3's silent retries would multiply
    # every request timeout against a hanging API server.
    configuration.retries = False
    return client.ApiClient(configuration)


class KubernetesRunApi:
    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        api_client: Any = None,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        from kubernetes import client

        self._namespace = namespace
        self._name = name
        self._uid = uid or None
        self._timeout = request_timeout
        self._objects = client.CustomObjectsApi(api_client or load_api_client())

    @property
    def description(self) -> str:
        return f"{self._namespace}/{self._name}"

    def _snapshot(self, run: Mapping[str, Any]) -> RunSnapshot:
        metadata = run.get("metadata") or {}
        if self._uid is not None and metadata.get("uid") not in (None, self._uid):
            raise ApiUnavailable(
                f"run {self.description} has uid {metadata.get('uid')}, expected {self._uid}: "
                "it was deleted and recreated"
            )
        annotation = (metadata.get("annotations") or {}).get(ANNOTATION_BREAKERS)
        spec = run.get("spec") or {}
        configs = spec.get("circuitBreakers") if isinstance(spec, Mapping) else None
        return RunSnapshot(
            resource_version=str(metadata.get("resourceVersion", "")),
            annotation=annotation if isinstance(annotation, str) else None,
            circuit_configs=configs if isinstance(configs, Mapping) else None,
        )

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Mapping[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            result = method(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            status = getattr(exc, "status", None)
            if status in CONFLICT_STATUSES:
                raise WriteConflict(f"{self.description}: HTTP {status}") from exc
            if status in DENIED_STATUSES:
                raise denied(self.description, status, _server_message(exc)) from exc
            raise ApiUnavailable(f"{self.description}: HTTP {status} {exc.reason}") from exc
        except Exception as exc:  # urllib3 / socket / TLS errors: all mean "unreachable"
            raise ApiUnavailable(f"{self.description}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, Mapping):
            raise ApiUnavailable(f"{self.description}: unexpected response {type(result).__name__}")
        return result

    def read(self) -> RunSnapshot:
        run = self._call(
            self._objects.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self._namespace,
            PLURAL,
            self._name,
        )
        return self._snapshot(run)

    def write(self, resource_version: str, annotation: str) -> RunSnapshot:
        patch = {
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": {ANNOTATION_BREAKERS: annotation},
            }
        }
        run = self._call(
            self._objects.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self._namespace,
            PLURAL,
            self._name,
            patch,
            _content_type="application/merge-patch+json",
        )
        return self._snapshot(run)


def _server_message(exc: Any) -> str:
    """The `message` of the API server's Status body (it names the refused user), else ''."""
    try:
        body = json.loads(getattr(exc, "body", None) or "")
    except (TypeError, ValueError):
        return str(getattr(exc, "reason", "") or "")
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""
