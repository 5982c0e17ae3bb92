"""`RunApi` over the official `kubernetes` client: read the run, merge-patch its annotation.

Both go through PATCH, never GET. A stage identity may be shared by several runs, and RBAC cannot
tell its pods apart, so granting it `get` would let a stage of one run read every other run of
that identity. A PATCH passes admission, which can: the stage-confinement policy admits a pod's
request only on the run whose status names the pod's Job (docs/security.md). So a read is an
empty merge patch (`{}`): the API server answers with the run and writes nothing (a no-op patch
leaves the resourceVersion alone), and the policy judges it like any write.

The write is a JSON merge patch carrying `metadata.resourceVersion`, which the API server treats as
a precondition and answers 409 on mismatch; a 422 (what a JSON-patch `test` op answers) is treated
the same way so either patch style can sit behind this class. The run's UID, when known, is checked
on read so a breaker never writes into a different run that reuses the name. A 401 or 403 is
`AccessDenied` (with the identity the API server names), never "unreachable": only a change of
RBAC, account or run fixes that. A 403 from the policy saying the run's status does not name this
pod's Job is `NotEnrolled`: the operator records the Job right after creating it, so it is
normally a race with the operator that the store waits out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from extraction_operator.api.constants import ANNOTATION_BREAKERS, GROUP, PLURAL, VERSION

from .api import NOT_ENROLLED_MARKER, ApiUnavailable, NotEnrolled, RunSnapshot, WriteConflict
from .forbidden import denied, identity_from_token

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
                message = _server_message(exc)
                if status == 403 and NOT_ENROLLED_MARKER in message:
                    raise NotEnrolled(
                        f"{self.description}: HTTP 403: {message}",
                        run=self.description,
                        identity=identity_from_token(),
                    ) from exc
                raise denied(self.description, status, message) from exc
            raise ApiUnavailable(f"{self.description}: HTTP {status} {exc.reason}") from exc
        except Exception as exc:  # urllib3 / socket / TLS errors: all mean "unreachable"
            raise ApiUnavailable(f"{self.description}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, Mapping):
            raise ApiUnavailable(f"{self.description}: unexpected response {type(result).__name__}")
        return result

    def read(self) -> RunSnapshot:
        """The run, as the answer to an empty merge patch (see the module docstring)."""
        return self._patch({})

    def _patch(self, patch: Mapping[str, Any]) -> RunSnapshot:
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

    def write(self, resource_version: str, annotation: str) -> RunSnapshot:
        return self._patch(
            {
                "metadata": {
                    "resourceVersion": resource_version,
                    "annotations": {ANNOTATION_BREAKERS: annotation},
                }
            }
        )


def _server_message(exc: Any) -> str:
    """The `message` of the API server's Status body (it names the refused user), else ''."""
    try:
        body = json.loads(getattr(exc, "body", None) or "")
    except (TypeError, ValueError):
        return str(getattr(exc, "reason", "") or "")
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""
