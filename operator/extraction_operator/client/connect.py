"""Where the CLI's API calls go: kubeconfig, context and namespace, resolved the way kubectl does.

The kubeconfig is `--kubeconfig`, else `$KUBECONFIG` (a list of files, merged), else
`~/.kube/config`; when none of them exists and the process runs in a pod, the pod's service account
(in-cluster config). The namespace is `-n/--namespace`, else the context's namespace, else the
pod's namespace in-cluster, else `default`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from .errors import CliError

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_KUBECONFIG = Path("~/.kube/config")
# The client's own functions are untyped; name their result types once here.
_new_client_from_config: Callable[..., Any] = config.new_client_from_config
_load_incluster_config: Callable[..., None] = config.load_incluster_config
_list_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    config.list_kube_config_contexts
)


@dataclass
class Connection:
    """An API client bound to one cluster and the namespace the command acts in."""

    api: Any  # kubernetes.client.ApiClient
    namespace: str
    source: str  # where the credentials came from, for error messages

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> Any:
        return client.BatchV1Api(self.api)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def close(self) -> None:
        self.api.close()


def kubeconfig_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The kubeconfig file(s) to load (`os.pathsep`-joined when several), or None for none."""
    env = os.environ if environ is None else environ
    if explicit:
        if not Path(explicit).expanduser().is_file():
            raise CliError(f"--kubeconfig {explicit}: no such file")
        return str(Path(explicit).expanduser())
    listed = [part for part in env.get("KUBECONFIG", "").split(os.pathsep) if part]
    if listed:
        existing = [str(Path(p).expanduser()) for p in listed if Path(p).expanduser().is_file()]
        if existing:
            return os.pathsep.join(existing)
        return None
    default = DEFAULT_KUBECONFIG.expanduser()
    return str(default) if default.is_file() else None


def _in_cluster(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT"))


def _context_namespace(path: str, context: str | None) -> str | None:
    contexts, current = _list_contexts(config_file=path)
    wanted = context or (current or {}).get("name")
    for entry in contexts or []:
        if entry.get("name") == wanted:
            namespace = (entry.get("context") or {}).get("namespace")
            return str(namespace) if namespace else None
    return None


def connect(
    *, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Connection:
    """An API client from the kubeconfig (or in-cluster), and the namespace to act in."""
    path = kubeconfig_path(kubeconfig)
    if path is None:
        if not _in_cluster(os.environ):
            raise CliError(
                "no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config "
                "(or run inside a pod, with its service account)"
            )
        if context:
            raise CliError("--context needs a kubeconfig; in a pod there is only the pod's own")
        configuration = client.Configuration()
        try:
            _load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise CliError(f"cannot use the pod's service account: {error}") from None
        own = IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else ""
        return Connection(
            client.ApiClient(configuration), namespace or own or "default", "in-cluster config"
        )
    try:
        api = _new_client_from_config(config_file=path, context=context, persist_config=False)
        chosen = namespace or _context_namespace(path, context) or "default"
    except ConfigException as error:
        raise CliError(f"cannot load the kubeconfig {path}: {error}") from None
    source = f"kubeconfig {path}" + (f", context {context}" if context else "")
    return Connection(api, chosen, source)
