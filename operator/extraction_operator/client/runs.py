"""ExtractionRuns through the API: read one or all, merge-patch one; a missing run (or a cluster
without the CRD) is a `CliError` that says which."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from extraction_operator.api.constants import GROUP, PLURAL, VERSION

from .connect import Connection
from .errors import CliError, api_message, api_status, describe_api_error

JSON = Mapping[str, Any]
MERGE_PATCH = "application/merge-patch+json"
KIND_NAME = f"{PLURAL}.{GROUP}"


def _missing(conn: Connection, name: str, error: Any) -> CliError:
    if "could not find the requested resource" in api_message(error):
        return CliError(
            f"the cluster at {conn.host} does not serve {KIND_NAME}: is the CRD installed? "
            f"({describe_api_error(error)})"
        )
    return CliError(f'extractionrun "{name}" not found in namespace "{conn.namespace}"')


def api_failure(what: str, error: Exception) -> CliError:
    """`cannot <what>: <the API server's message> (<status>)`, or the transport's error."""
    if api_status(error):
        return CliError(f"cannot {what}: {describe_api_error(error)}", status=api_status(error))
    return CliError(f"cannot {what}: {type(error).__name__}: {error}")


def get_run(conn: Connection, name: str) -> dict[str, Any]:
    """The run as the API server stores it (plain JSON)."""
    try:
        run: dict[str, Any] = conn.custom.get_namespaced_custom_object(
            GROUP, VERSION, conn.namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            raise _missing(conn, name, error) from None
        raise api_failure(f"read extractionrun {conn.namespace}/{name}", error) from None
    return run


def list_runs(conn: Connection) -> list[dict[str, Any]]:
    """Every run of the namespace, by name."""
    try:
        listed: dict[str, Any] = conn.custom.list_namespaced_custom_object(
            GROUP, VERSION, conn.namespace, PLURAL
        )
    except ApiException as error:
        if error.status == 404:
            raise _missing(conn, "", error) from None
        raise api_failure(f"list extractionruns in {conn.namespace}", error) from None
    items = [item for item in listed.get("items") or [] if isinstance(item, dict)]
    return sorted(items, key=lambda run: str(run.get("metadata", {}).get("name", "")))


def patch_run(conn: Connection, name: str, patch: JSON) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) of the run; returns the run as stored after it."""
    try:
        run: dict[str, Any] = conn.custom.patch_namespaced_custom_object(
            GROUP, VERSION, conn.namespace, PLURAL, name, dict(patch), _content_type=MERGE_PATCH
        )
    except ApiException as error:
        if error.status == 404:
            raise _missing(conn, name, error) from None
        raise api_failure(f"patch extractionrun {conn.namespace}/{name}", error) from None
    return run
