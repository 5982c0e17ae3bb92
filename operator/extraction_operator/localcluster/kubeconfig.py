"""Kubeconfig files pointing at a plain-HTTP API server (the local emulator needs no auth)."""

from __future__ import annotations

from pathlib import Path

import yaml


def render_kubeconfig(url: str, namespace: str = "default", name: str = "localcluster") -> str:
    """A kubeconfig whose current context talks to `url` in `namespace`."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {}}],
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
