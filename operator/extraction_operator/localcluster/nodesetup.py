"""The real cluster's pod setup: claims, projected volumes, a private mount, in-cluster env.

For each pod bound to the node, before its process starts:

- each `persistentVolumeClaim` volume maps to its bound PersistentVolume's `hostPath` directory
  (read with the node's identity, which the Node authorizer allows for claims of its pods); an
  unbound or missing claim keeps the pod waiting, a PV of another type fails it;
- each mounted `projected`, `secret`, `configMap` or `downwardAPI` volume is written into a
  per-pod directory (`projected.py`); that is where the `kube-api-access-*` volume's service
  account token, `ca.crt` and `namespace` land;
- the process starts in a private mount namespace (`mountns.py`, when the host allows it) in
  which those directories are bind-mounted at their mountPaths below `/var/run/secrets`, so the
  pod reads its token at `/var/run/secrets/kubernetes.io/serviceaccount/token` as in a real pod;
- `KUBERNETES_SERVICE_HOST=127.0.0.1` and `KUBERNETES_SERVICE_PORT=<API server port>` (the
  `kubernetes` Service's ClusterIP is not routed here: there is no kube-proxy, and processes
  may only reach loopback), so in-cluster config of any client finds the API server;
- `KUBECONFIG` points at a kubeconfig that authenticates with the pod's own token file (never the
  node's or an admin's credentials), verifying the server with the pod's `ca.crt`; a pod with no
  token (`automountServiceAccountToken: false`) gets one with no credentials at all.

Tokens are refreshed while the pod runs (`refresh`), in place, so both paths see the new one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from .kubeapi import PVCS, PVS, ApiClient, ApiError
from .kubeconfig import render_kubeconfig
from .mountns import MountNamespaces
from .podsetup import Prepared
from .podspec import JSON, Launch, PodConfigError, PodSpecError, first_container
from .podstatus import PodRun
from .projected import WRITABLE_TYPES, IssuedToken, VolumeWriter

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_env(api_url: str) -> dict[str, str]:
    """The `kubernetes` Service's env vars a kubelet gives every container, aimed at loopback."""
    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
    }


class NodePodSetup:
    """Pod setup against a real API server, as the node identity of `client`."""

    def __init__(
        self,
        client: ApiClient,
        *,
        node_name: str,
        ca_file: Path | None,
        mounts: MountNamespaces | None,
        token_refresh_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.ca_file = ca_file
        self.mounts = mounts
        self.writer = VolumeWriter(client, node_name, refresh_after=token_refresh_seconds)
        self._tokens: dict[str, list[IssuedToken]] = {}

    async def prepare(self, run: PodRun) -> Prepared:
        pod = run.pod
        container = first_container(pod)
        mounted = {str(m.get("name")): str(m.get("mountPath") or "").rstrip("/")
                   for m in container.get("volumeMounts") or [] if isinstance(m, dict)}  # fmt: skip
        volume_dirs: dict[str, Path] = {}
        tokens: list[IssuedToken] = []
        token_by_mount: dict[str, IssuedToken] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if not isinstance(volume, dict):
                continue
            name = str(volume.get("name") or "")
            claim = volume.get("persistentVolumeClaim")
            if isinstance(claim, dict):
                volume_dirs[name] = await self._claim_dir(run.namespace, claim)
            elif name in mounted and any(isinstance(volume.get(t), dict) for t in WRITABLE_TYPES):
                directory = run.paths.volume(name)
                written = await self.writer.write(pod, volume, directory)
                tokens += written
                if written:
                    token_by_mount[mounted[name]] = written[0]
                volume_dirs[name] = directory
        self._tokens[run.uid] = tokens
        token = token_by_mount.get(SERVICE_ACCOUNT_MOUNT) or (tokens[0] if tokens else None)
        ca_file = self.ca_file
        if token is not None and (token.file.parent / "ca.crt").is_file():
            ca_file = token.file.parent / "ca.crt"
        kubeconfig = render_kubeconfig(
            self.client.url,
            run.namespace,
            name="in-cluster",
            ca_file=ca_file,
            token_file=token.file if token is not None else None,
        )
        return Prepared(kubeconfig=kubeconfig, volume_dirs=volume_dirs,
                        env=in_cluster_env(self.client.url))  # fmt: skip

    def command(self, launch: Launch) -> list[str]:
        if self.mounts is None:
            return launch.argv
        return self.mounts.wrap(launch.argv, launch.mounts)

    async def refresh(self, run: PodRun) -> None:
        tokens = self._tokens.get(run.uid)
        if tokens:
            await self.writer.refresh(tokens)

    def release(self, run: PodRun) -> None:
        self._tokens.pop(run.uid, None)

    async def _claim_dir(self, namespace: str, claim: JSON) -> Path:
        name = str(claim.get("claimName") or "")
        try:
            pvc = await self.client.get(PVCS.path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                raise PodConfigError(f'persistentvolumeclaim "{name}" not found') from exc
            raise
        volume = str((pvc.get("spec") or {}).get("volumeName") or "")
        if not volume or (pvc.get("status") or {}).get("phase") != "Bound":
            raise PodConfigError(f'persistentvolumeclaim "{name}" is not bound yet')
        pv = await self.client.get(PVS.path(None, volume))
        host_path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
        if not host_path:
            raise PodSpecError(
                f"persistentvolume {volume!r} (claim {name!r}) is not a hostPath volume: a process "
                "node can only use directories of its own host"
            )
        return Path(str(host_path))
