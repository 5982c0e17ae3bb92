"""What a node does around a pod's process, besides running it: the emulator's way.

The kubelet (`kubelet.py`) starts, stops and reports processes the same way on every tier; what
differs between the emulator and a node of a real cluster is how a pod's volumes, credentials and
in-cluster environment come to be. `PodSetup` is that seam: `prepare` runs before the process
starts (volume directories, extra env, the pod's kubeconfig), `command` may wrap the argv (a
private mount namespace), `refresh` runs on every pass while the pod runs (token rotation) and
`release` when the node forgets the pod. `LocalPodSetup` is the emulator's: no credentials (the
emulator needs none) and the runner's default volume directories. The real cluster's is
`nodesetup.NodePodSetup`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .kubeconfig import render_kubeconfig
from .podspec import Launch
from .podstatus import PodRun


@dataclass(frozen=True)
class Prepared:
    """What `prepare` decided for one pod."""

    kubeconfig: str  # the text of the pod's KUBECONFIG file
    volume_dirs: dict[str, Path] = field(default_factory=dict)  # volume name -> host directory
    env: dict[str, str] = field(default_factory=dict)  # below the container's own env


class PodSetup(Protocol):
    async def prepare(self, run: PodRun) -> Prepared:
        """Get everything a pod needs before its process starts.

        Raises PodConfigError (the pod waits and this is retried) or PodSpecError (the pod fails).
        """

    def command(self, launch: Launch) -> list[str]:
        """The argv to execute for a prepared launch."""

    async def refresh(self, run: PodRun) -> None:
        """Called on every pass while the pod's process runs."""

    def release(self, run: PodRun) -> None:
        """The node forgets the pod; drop what `prepare` kept for it."""


class LocalPodSetup:
    """The emulator tier: a kubeconfig with the API URL only, nothing mounted or refreshed."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    async def prepare(self, run: PodRun) -> Prepared:
        return Prepared(kubeconfig=render_kubeconfig(self.api_url, run.namespace))

    def command(self, launch: Launch) -> list[str]:
        return launch.argv

    async def refresh(self, run: PodRun) -> None:
        return None

    def release(self, run: PodRun) -> None:
        return None
