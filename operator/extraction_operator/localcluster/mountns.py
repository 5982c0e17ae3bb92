"""Give one pod's process its own view of `/var/run/secrets`: a private mount namespace.

A pod reads its service account token from `/var/run/secrets/kubernetes.io/serviceaccount`, a
fixed path that in-cluster clients (the official Python client's `load_incluster_config`, kopf's
in-cluster login, client-go) hard-code. Processes of one host share that path, so each pod's
process is started through `unshare -m --propagation private` and a tiny shell prologue that, in
the new namespace only, mounts an empty tmpfs over `/var/run/secrets` (hiding whatever the host
keeps there, so a pod never sees the host's or another pod's credentials), bind-mounts each of the
pod's volumes whose mountPath lies below it (read-only when the volumeMount says so), and then
`exec`s the stage program: the process id stays the stage's own, so signals reach it unchanged.
The bind mounts are of the per-pod directories, not of files, so a token the node rotates by
renaming a new file into place is seen at once.

Only paths below `/var/run/secrets` get real mounts: elsewhere a mount point would have to be
created on the host's filesystem first (the namespace shares it). Other volumes keep the runner's
path rewriting (see `podspec`). Creating `/var/run/secrets` itself, when the host lacks it, is the
one change made to the host: an empty directory used only as a mount point.

Where this cannot work (not root, no `unshare`, a kernel or container runtime that forbids mount
namespaces), `MountNamespaces.probe` answers None and pods start without it: their `KUBECONFIG`
still carries the pod's own token, but code that reads the fixed in-cluster path finds nothing
(or, on a host that has such a directory, the host's files).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .podspec import Mount

log = logging.getLogger(__name__)

SECRETS_ROOT = "/var/run/secrets"

# $1: the directory to cover with a tmpfs; then (source, target, ro|rw) triples; `--`; argv.
_PROLOGUE = """set -e
root=$1; shift
mount -t tmpfs -o mode=0755,size=4m extraction-secrets "$root"
while [ "$1" != "--" ]; do
  mkdir -p "$2"
  mount --bind "$1" "$2"
  if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi
  shift 3
done
shift
exec "$@"
"""


def below_root(path: str, root: str = SECRETS_ROOT) -> bool:
    """Whether a container mountPath can be a real mount (it lies below `root`)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class MountNamespaces:
    """A working `unshare` + `mount`: wraps a pod's argv so it starts in its own namespace."""

    unshare: str
    root: str = SECRETS_ROOT

    @classmethod
    def probe(cls, root: str = SECRETS_ROOT) -> MountNamespaces | None:
        """Try the whole mechanism once (namespace, tmpfs over `root`); None if it fails."""
        unshare = shutil.which("unshare")
        if unshare is None or shutil.which("mount") is None:
            log.warning("no unshare/mount: pods will not get a private %s", root)
            return None
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("cannot create the mount point %s (%s): no private mounts", root, exc)
            return None
        with tempfile.TemporaryDirectory() as scratch:
            argv = [unshare, "-m", "--propagation", "private", "sh", "-c", _PROLOGUE, "sh",
                    root, scratch, f"{root}/probe", "ro", "--", "true"]  # fmt: skip
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("mount namespaces unusable (%s): no private %s", exc, root)
                return None
        if result.returncode != 0:
            log.warning("mount namespaces unusable: %s", result.stderr.strip()[-300:])
            return None
        return cls(unshare, root)

    def wrap(self, argv: Sequence[str], mounts: Sequence[Mount]) -> list[str]:
        """`argv` started in a private mount namespace with `mounts` below the root in place."""
        triples: list[str] = []
        for mount in mounts:
            if below_root(mount.path, self.root) and mount.path != self.root:
                triples += [str(mount.host), mount.path, "ro" if mount.read_only else "rw"]
        return [self.unshare, "-m", "--propagation", "private", "sh", "-c", _PROLOGUE, "sh",
                self.root, *triples, "--", *argv]  # fmt: skip
