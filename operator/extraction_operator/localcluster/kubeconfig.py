"""Kubeconfig files: write the ones the local cluster hands out, read the ones a node is given.

The emulator needs no auth, so the kubeconfigs it writes carry a URL only. A process node of a
real cluster is given a kubeconfig for its own identity (a client certificate for
`system:node:<name>`, or a token) and writes one per pod that authenticates with the pod's own
service account token; `load_kubeconfig` reads the subset of the format those use (the current
context's server, CA, client certificate and key, token or token file; inline `*-data` variants
too), resolving relative paths against the kubeconfig's directory as kubectl does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used: the message says which part is missing or malformed."""


@dataclass(frozen=True)
class ClientConfig:
    """How to reach and authenticate to one API server (the current context of a kubeconfig)."""

    server: str
    namespace: str = "default"
    ca_file: Path | None = None
    ca_data: str | None = None  # PEM
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_data: bytes | None = None  # PEM; written to a private file when a TLS context is built
    key_data: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    insecure: bool = False


def render_kubeconfig(
    url: str,
    namespace: str = "default",
    name: str = "localcluster",
    *,
    ca_file: Path | None = None,
    token_file: Path | None = None,
) -> str:
    """A kubeconfig whose current context talks to `url` in `namespace`.

    With `ca_file` the server's certificate is verified against it; with `token_file` requests
    carry that file's token (clients re-read it, so a rotated token is picked up).
    """
    cluster: dict[str, Any] = {"server": url}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    user: dict[str, Any] = {}
    if token_file is not None:
        user["tokenFile"] = str(token_file)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, url: str, namespace: str = "default") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_kubeconfig(url, namespace))
    return path


def _named(doc: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            return body if isinstance(body, dict) else {}
    raise KubeconfigError(f"no {section[:-1]} named {name!r} in the kubeconfig")


def _path(value: object, base: Path) -> Path | None:
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _data(value: object) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as exc:
        raise KubeconfigError(f"a *-data field is not base64: {exc}") from exc


def load_kubeconfig(path: Path, context: str | None = None) -> ClientConfig:
    """The connection settings of `context` (default: the current context) in `path`."""
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path} is not a kubeconfig")
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError(f"{path} has no current-context")
    ctx = _named(doc, "contexts", str(name))
    cluster = _named(doc, "clusters", str(ctx.get("cluster")))
    user = _named(doc, "users", str(ctx.get("user"))) if ctx.get("user") else {}
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} in {path} has no server")
    base = Path(path).resolve().parent
    ca_data = _data(cluster.get("certificate-authority-data"))
    return ClientConfig(
        server=server,
        namespace=str(ctx.get("namespace") or "default"),
        ca_file=_path(cluster.get("certificate-authority"), base),
        ca_data=ca_data.decode() if ca_data else None,
        cert_file=_path(user.get("client-certificate"), base),
        key_file=_path(user.get("client-key"), base),
        cert_data=_data(user.get("client-certificate-data")),
        key_data=_data(user.get("client-key-data")),
        token=str(user["token"]) if user.get("token") else None,
        token_file=_path(user.get("tokenFile"), base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
