"""A kubeconfig for the emulator, so kubectl, kopf and the `kubernetes` client find it."""

from __future__ import annotations

from pathlib import Path

import yaml

CONTEXT = "extraction-local"


def kubeconfig(url: str, namespace: str = "default") -> dict[str, object]:
    """A kubeconfig document with one cluster, user and context (plain HTTP, no credentials)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, url: str, namespace: str = "default") -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(kubeconfig(url, namespace), sort_keys=False))
    return target
