"""A hostPath volume provisioner: every pending claim gets a pre-bound PersistentVolume.

A real cluster has no storage here, so a PersistentVolumeClaim would stay `Pending` and its pods
unschedulable. This loop plays an external provisioner: for each claim with no `volumeName` that
is `Pending`, it makes a directory under its root and creates a `hostPath` PV for it, pre-bound
to the claim (`claimRef` with the claim's uid) with the claim's requested capacity, access modes,
volume mode and storage class. The real PV controller then binds the pair and the real scheduler
places the claim's pods (on the one node whose host has the directory).

PVs it made carry `pv.kubernetes.io/provisioned-by`, which tells the PV controller that their
reclaim is an external provisioner's business: once such a PV is `Released` (its claim deleted)
and its policy is `Delete`, this loop removes the directory and the PV; `Retain` keeps both.

It runs with an identity of its own (a separate kubeconfig, e.g. the admin's), because a node's
identity may not create PersistentVolumes, nor list claims cluster-wide.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from .aio import wait_event
from .kubeapi import PVCS, PVS, ApiClient, ApiError
from .podspec import JSON
from .watchcache import WatchCache

log = logging.getLogger(__name__)

PROVISIONER = "extraction-operator.local/hostpath"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def volume_name(claim: JSON) -> str:
    """The PV's name for a claim, as dynamic provisioners name theirs: `pvc-<claim uid>`."""
    return f"pvc-{claim['metadata']['uid']}"


def wants_volume(claim: JSON) -> bool:
    meta = claim.get("metadata") or {}
    return (
        not (claim.get("spec") or {}).get("volumeName")
        and (claim.get("status") or {}).get("phase", "Pending") == "Pending"
        and not meta.get("deletionTimestamp")
        and bool(meta.get("uid"))
    )


def volume_for(claim: JSON, directory: Path, reclaim_policy: str) -> JSON:
    """The PersistentVolume pre-bound to `claim`, backed by `directory`."""
    meta = claim["metadata"]
    spec = claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
    pv_spec: JSON = {
        "capacity": {"storage": storage},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
        "persistentVolumeReclaimPolicy": reclaim_policy,
        "storageClassName": spec.get("storageClassName") or "",
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": pv_spec,
    }


def reclaimable(volume: JSON) -> bool:
    """One of ours, released by its claim, to be deleted."""
    meta = volume.get("metadata") or {}
    return (
        (meta.get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
        and (volume.get("status") or {}).get("phase") == "Released"
        and (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete"
        and not meta.get("deletionTimestamp")
    )


def _make_volume_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)  # any pod's user may write its volume
    return directory


def _remove_volume_dir(directory: Path, root: Path) -> None:
    """Remove a reclaimed volume's directory, never anything outside the provisioner's root."""
    if directory.resolve().is_relative_to(root.resolve()):
        shutil.rmtree(directory, ignore_errors=True)


class HostPathProvisioner:
    """Watches claims and volumes; provisions and reclaims hostPath PVs under `root`."""

    def __init__(self, client: ApiClient, root: Path, *, reclaim_policy: str = "Delete") -> None:
        if reclaim_policy not in ("Delete", "Retain"):
            raise ValueError(f"reclaim_policy must be Delete or Retain, not {reclaim_policy!r}")
        self.client = client
        self.root = root
        self.reclaim_policy = reclaim_policy
        self._wake = asyncio.Event()
        self.claims = WatchCache(client, PVCS.path(), self._changed)
        self.volumes = WatchCache(client, PVS.path(), self._changed)

    def _changed(self, kind: str, old: JSON | None, new: JSON | None) -> None:
        self._wake.set()

    async def run(self, tick: float = 1.0) -> None:
        """Reconcile on every change (and every `tick` seconds) until cancelled."""
        tasks = [asyncio.create_task(self.claims.run()), asyncio.create_task(self.volumes.run())]
        try:
            while True:
                await wait_event(self._wake, tick)
                self._wake.clear()
                if self.claims.synced.is_set() and self.volumes.synced.is_set():
                    try:
                        await self.sync()
                    except Exception:
                        log.exception("provisioner pass failed; retrying")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def sync(self) -> None:
        existing = {key[1] for key in self.volumes.objects}
        for claim in list(self.claims.objects.values()):
            if wants_volume(claim) and volume_name(claim) not in existing:
                await self._provision(claim)
        for volume in list(self.volumes.objects.values()):
            if reclaimable(volume):
                await self._reclaim(volume)

    async def _provision(self, claim: JSON) -> None:
        directory = _make_volume_dir(self.root / volume_name(claim))
        try:
            created = await self.client.create(
                PVS.path(), volume_for(claim, directory, self.reclaim_policy)
            )
        except ApiError as exc:
            if exc.conflict:
                return
            log.warning("claim %s: cannot create its volume: %s", claim["metadata"]["name"], exc)
            return
        self.volumes.remember(created)
        meta = claim["metadata"]
        log.info("claim %s/%s: provisioned %s", meta["namespace"], meta["name"], directory)

    async def _reclaim(self, volume: JSON) -> None:
        path = ((volume.get("spec") or {}).get("hostPath") or {}).get("path")
        if path:
            _remove_volume_dir(Path(path), self.root)
        name = volume["metadata"]["name"]
        try:
            await self.client.delete(PVS.path(None, name), uid=volume["metadata"].get("uid"))
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                log.warning("volume %s: cannot delete it: %s", name, exc)
                return
        self.volumes.forget(volume)
        log.info("volume %s: reclaimed", name)
