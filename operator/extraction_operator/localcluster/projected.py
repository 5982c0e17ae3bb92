"""Projected volumes as a kubelet writes them, service account tokens included.

Every pod the ServiceAccount admission plugin admits (unless `automountServiceAccountToken` is
false) carries a `kube-api-access-*` projected volume mounted at
`/var/run/secrets/kubernetes.io/serviceaccount`: a `serviceAccountToken` source (`token`), the
`kube-root-ca.crt` ConfigMap (`ca.crt`) and the namespace from the downward API (`namespace`). A
node writes such a volume into a per-pod directory; this module does that for `projected`,
`secret`, `configMap` and `downwardAPI` volumes alike, from the node's own identity, which the
Node authorizer lets read exactly the objects that pods bound to the node reference.

A token is asked for with a TokenRequest bound to the pod (`boundObjectRef` with the pod's uid),
as a kubelet does: the API server then invalidates it when the pod goes away, and NodeRestriction
lets a node ask only for pods bound to it. A token is refreshed once 80% of its lifetime has
passed (or it is older than 24 h), the kubelet's rule, by renaming a new file into place;
`refresh_after` overrides the age for tests. Files are written atomically (temporary file, then
rename), so a reader never sees half a token.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .jobcontroller import parse_time
from .kubeapi import CONFIGMAPS, SECRETS, SERVICEACCOUNTS, ApiClient, ApiError
from .podspec import PodConfigError, PodSpecError, decode_source, field_value, resource_value

log = logging.getLogger(__name__)

JSON = dict[str, Any]

DEFAULT_TOKEN_SECONDS = 3600
REFRESH_FRACTION = 0.8
MAX_TOKEN_AGE_SECONDS = 24 * 3600.0
RETRY_SECONDS = 5.0
WRITABLE_TYPES = ("projected", "secret", "configMap", "downwardAPI")


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one rename, so readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _make_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)  # an empty volume still exists


def _relative(directory: Path, name: str) -> Path:
    """A file path inside `directory`; `..` or an absolute path would escape it."""
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts:
        raise PodSpecError(f"volume file path {name!r} must be relative and must not contain '..'")
    return directory / name


@dataclass
class IssuedToken:
    """A service account token the node wrote for a pod, and when to renew it."""

    file: Path
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audience: str
    expiration_seconds: int
    issued_at: float = 0.0  # time.monotonic() of the last write
    lifetime: float = 0.0  # seconds the API server granted
    retry_at: float = 0.0

    def due(self, now: float, refresh_after: float | None) -> bool:
        if now < self.retry_at:
            return False
        age = now - self.issued_at
        if refresh_after is not None:
            return age >= refresh_after
        return age >= min(REFRESH_FRACTION * self.lifetime, MAX_TOKEN_AGE_SECONDS)


class VolumeWriter:
    """Writes a pod's projected, secret, configMap and downwardAPI volumes from the API."""

    def __init__(
        self, client: ApiClient, node_name: str, *, refresh_after: float | None = None
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.refresh_after = refresh_after

    async def write(self, pod: JSON, volume: JSON, directory: Path) -> list[IssuedToken]:
        """Write one volume's files into `directory`; returns the tokens it holds.

        Raises PodConfigError when a referenced object is missing (the pod waits, as a kubelet
        retries a failed mount) and PodSpecError for what can never work.
        """
        _make_dir(directory)
        if isinstance(volume.get("projected"), dict):
            sources = volume["projected"].get("sources") or []
        elif isinstance(volume.get("secret"), dict):
            secret = volume["secret"]
            sources = [{"secret": {**secret, "name": secret.get("secretName")}}]
        elif isinstance(volume.get("configMap"), dict):
            sources = [{"configMap": volume["configMap"]}]
        elif isinstance(volume.get("downwardAPI"), dict):
            sources = [{"downwardAPI": volume["downwardAPI"]}]
        else:
            return []
        tokens: list[IssuedToken] = []
        for source in sources:
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("serviceAccountToken"), dict):
                tokens.append(await self._token(pod, source["serviceAccountToken"], directory))
            elif isinstance(source.get("configMap"), dict):
                await self._object_files(pod, "configmap", source["configMap"], directory)
            elif isinstance(source.get("secret"), dict):
                await self._object_files(pod, "secret", source["secret"], directory)
            elif isinstance(source.get("downwardAPI"), dict):
                self._downward_files(pod, source["downwardAPI"], directory)
            else:
                raise PodSpecError(
                    f"volume {volume.get('name')!r}: projected source {sorted(source)} is not "
                    "supported by the process node"
                )
        return tokens

    async def refresh(self, tokens: list[IssuedToken]) -> None:
        """Renew every token that is due; a failure is retried a few seconds later."""
        now = time.monotonic()
        for token in tokens:
            if not token.due(now, self.refresh_after):
                continue
            try:
                await self._issue(token)
            except ApiError as exc:
                token.retry_at = now + RETRY_SECONDS
                log.warning("pod %s: token refresh failed: %s", token.pod_name, exc)

    # ---- sources --------------------------------------------------------------------------------

    async def _token(self, pod: JSON, source: JSON, directory: Path) -> IssuedToken:
        meta = pod.get("metadata") or {}
        seconds = source.get("expirationSeconds")
        token = IssuedToken(
            file=_relative(directory, str(source.get("path") or "")),
            namespace=str(meta.get("namespace") or "default"),
            service_account=str((pod.get("spec") or {}).get("serviceAccountName") or "default"),
            pod_name=str(meta.get("name")),
            pod_uid=str(meta.get("uid")),
            audience=str(source.get("audience") or ""),
            expiration_seconds=seconds if isinstance(seconds, int) else DEFAULT_TOKEN_SECONDS,
        )
        try:
            await self._issue(token)
        except ApiError as exc:
            if exc.not_found:
                raise PodConfigError(
                    f'serviceaccount "{token.service_account}" not found: {exc.message}'
                ) from exc
            raise
        return token

    async def _issue(self, token: IssuedToken) -> None:
        body: JSON = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [token.audience] if token.audience else [],
                "expirationSeconds": token.expiration_seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": token.pod_name,
                    "uid": token.pod_uid,
                },
            },
        }
        path = SERVICEACCOUNTS.path(token.namespace, token.service_account, "token")
        answer = await self.client.create(path, body)
        status = answer.get("status") or {}
        value = status.get("token")
        if not isinstance(value, str) or not value:
            raise ApiError(0, "BadBody", "the TokenRequest answer has no status.token")
        expires = parse_time(status.get("expirationTimestamp"))
        now = datetime.now(UTC)
        lifetime = (expires - now).total_seconds() if expires else token.expiration_seconds
        write_atomic(token.file, value.encode(), 0o600)
        token.issued_at, token.lifetime = time.monotonic(), max(lifetime, 1.0)
        log.info("pod %s: wrote a service account token (%s)", token.pod_name, token.file.name)

    async def _object_files(self, pod: JSON, kind: str, ref: JSON, directory: Path) -> None:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        name = str(ref.get("name") or "")
        resource = SECRETS if kind == "secret" else CONFIGMAPS
        try:
            obj = await self.client.get(resource.path(namespace, name))
        except ApiError as exc:
            if not exc.not_found:
                raise
            if ref.get("optional"):
                return
            raise PodConfigError(f'{kind} "{name}" not found') from exc
        data = decode_source(kind, obj)
        items = ref.get("items")
        mode = 0o600 if kind == "secret" else 0o644
        if not isinstance(items, list) or not items:
            for key, value in data.items():
                write_atomic(_relative(directory, key), value.encode(), mode)
            return
        for item in items:
            if not isinstance(item, dict):
                continue
            key = str(item.get("key") or "")
            if key not in data:
                if ref.get("optional"):
                    continue
                raise PodConfigError(f'couldn\'t find key {key} in {kind} "{name}"')
            target = _relative(directory, str(item.get("path") or key))
            write_atomic(target, data[key].encode(), mode)

    def _downward_files(self, pod: JSON, source: JSON, directory: Path) -> None:
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        for item in source.get("items") or []:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("fieldRef"), dict):
                value = field_value(pod, str(item["fieldRef"].get("fieldPath")), self.node_name)
            elif isinstance(item.get("resourceFieldRef"), dict):
                value = resource_value(container, str(item["resourceFieldRef"].get("resource")))
            else:
                continue
            write_atomic(_relative(directory, str(item.get("path") or "")), value.encode())
