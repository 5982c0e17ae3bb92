"""Build the Go tools the tests use (kstatus and promtool) into a cache outside the repository.

Both come from the small Go module `controlplane/tools/`, apart from the control plane's module
so that neither moves the other's cache key (`build.module_sources` leaves nested modules out):

- `kstatus`: `cmd/kstatus`, our few lines around `sigs.k8s.io/cli-utils/pkg/kstatus/status`.
  It reads Kubernetes objects as JSON on stdin (an object, a List, an array or a stream) and
  prints one JSON line per object: `{"kind", "namespace", "name", "status", "message"}`.
- `promtool`: Prometheus' own, `github.com/prometheus/prometheus/cmd/promtool`, a `tool`
  directive of that go.mod, built with `remove_all_sd` to leave out the cloud service-discovery
  plugins promtool has no use for here.

The cache entry is `<cache>/tools/<digest>/bin`, the digest covering go.mod, go.sum, the
module's sources, the Go version, GOEXPERIMENT and the build recipe (tags, ldflags). As for the
control plane, a build goes into a temporary sibling that is renamed into place under a file lock.
Run `python -m extraction_operator.controlplane.tools` to build (or find) them and print the bin
directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .build import (
    BuildError,
    _build_env,
    _locked,
    default_module_dir,
    find_go,
    go_version,
    module_sources,
)

log = logging.getLogger(__name__)

PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
TOOLS = {
    "kstatus": "./cmd/kstatus",
    "promtool": f"{PROMETHEUS_MODULE}/cmd/promtool",
}
# Prometheus' own switch (plugins/plugin_*.go): drop every optional service-discovery plugin.
BUILD_TAGS = ("remove_all_sd",)
PROMETHEUS_VERSION_VAR = "github.com/prometheus/common/version.Version"


def default_tools_dir() -> Path:
    """`controlplane/tools/` in the source checkout this package is installed from."""
    return default_module_dir() / "tools"


def default_cache_root() -> Path:
    explicit = os.environ.get("EXTRACTION_TOOLS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "extraction-operator" / "tools"


def prometheus_version(module_dir: Path) -> str:
    """The Prometheus release the pinned module is: module v0.316.0 is Prometheus 3.16.0."""
    text = (module_dir / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(PROMETHEUS_MODULE)}\s+(v\S+)", text, re.M)
    if not match:
        raise BuildError(f"{module_dir / 'go.mod'} does not require {PROMETHEUS_MODULE}")
    module_version = match.group(1)
    release = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)", module_version)
    if not release:
        return module_version.lstrip("v")
    return f"{release.group(1)}.{int(release.group(2))}.{release.group(3)}"


def _build_args(module_dir: Path) -> list[str]:
    ldflags = f"-s -w -X {PROMETHEUS_VERSION_VAR}={prometheus_version(module_dir)}"
    return ["-trimpath", f"-tags={','.join(BUILD_TAGS)}", f"-ldflags={ldflags}"]


def _cache_key(module_dir: Path, go: Path, env: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for source in module_sources(module_dir):
        digest.update(str(source.relative_to(module_dir)).encode())
        digest.update(source.read_bytes())
    digest.update(f"go{'.'.join(map(str, go_version(go)))}".encode())
    digest.update(env.get("GOEXPERIMENT", "").encode())
    digest.update(json.dumps([_build_args(module_dir), TOOLS]).encode())
    return digest.hexdigest()[:16]


def _complete(directory: Path) -> bool:
    return all((directory / name).exists() for name in TOOLS)


def build_tools(module_dir: Path | None = None, cache_root: Path | None = None) -> Path:
    """The bin directory holding `kstatus` and `promtool`, built first when not cached."""
    module_dir = module_dir or default_tools_dir()
    if not (module_dir / "go.mod").exists():
        raise BuildError(f"no Go module at {module_dir} (expected the project's tools module)")
    cache_root = cache_root or default_cache_root()
    go = find_go()
    env = _build_env(go)
    target = cache_root / _cache_key(module_dir, go, env)
    bin_dir = target / "bin"
    if _complete(bin_dir):
        return bin_dir
    with _locked(cache_root / ".lock"):
        if _complete(bin_dir):
            return bin_dir  # another session built them while we waited
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
        try:
            started = time.monotonic()
            log.warning("building kstatus and promtool into %s (cold: 2-10 min)", target)
            command = [
                str(go), "build", *_build_args(module_dir),
                "-o", str(staging / "bin") + "/", *TOOLS.values(),
            ]  # fmt: skip
            (staging / "bin").mkdir()
            result = subprocess.run(command, cwd=module_dir, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
            if result.returncode != 0:
                raise BuildError(f"`{' '.join(command)}` failed:\n{result.stdout[-4000:]}")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            log.warning("built kstatus and promtool in %.0f s", time.monotonic() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return bin_dir


def tool_path(name: str) -> Path:
    """The path of one built tool (`kstatus` or `promtool`), building them first if needed."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}: expected one of {sorted(TOOLS)}")
    return build_tools() / name


def kstatus(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """kstatus' verdict on each object: `{"kind", "namespace"?, "name", "status", "message"}`."""
    stream = "\n".join(json.dumps(obj) for obj in objects)
    if not stream:
        return []
    result = subprocess.run([str(tool_path("kstatus"))], input=stream, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"kstatus failed: {result.stderr.strip()}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def main() -> int:
    """Build (or find) the tools and print their bin directory: for the Makefile."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        print(build_tools())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
