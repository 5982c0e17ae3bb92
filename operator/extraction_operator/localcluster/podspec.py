"""Turn a Pod's first container into a local process launch: argv, env, working directory.

Pure functions only (the secrets and config maps a container references are fetched by the caller
and passed in), so every rule here is unit-tested without a server.

Differences from a container, all forced by running a process on the host:

- The image is ignored; `command` is required (there is no image entrypoint to fall back on).
  `python`/`python3` as `command[0]` runs the runner's own interpreter (`sys.executable`), so
  `python -m extraction_operator...` finds the installed package.
- A process cannot mount volumes, so each volume is a host directory: `persistentVolumeClaim`
  -> `<workdir>/volumes/<namespace>/pvc-<claimName>` (shared by every pod of the namespace that
  claims it), `emptyDir` and anything else -> a directory of the pod; the caller may map any
  volume to a directory of its own instead (`volume_dirs`: a node of a real cluster maps a claim
  to its PersistentVolume's hostPath, and writes projected volumes). Every env value and every
  command/args item that equals a container `mountPath` or starts with `mountPath/` is rewritten
  to the host directory (with `subPath` applied), so `$EXTRACTION_WORKSPACE` or
  `--out /workspace/x` point at the shared directory. The working directory is the container's
  `workingDir` when that lies under a mount, else a fresh per-pod directory.
- Env, lowest precedence first: the runner's own `INHERITED_ENV` variables (so tools and the
  interpreter work; `PATH` gets the interpreter's directory prepended, so the virtualenv's
  console scripts such as `extraction-operator` resolve), `PYTHONUNBUFFERED=1` (so logs and
  their tail are complete) and `HOSTNAME=<pod name>`; then `envFrom`; then `env`
  (literal values with `$(VAR)` expansion, `fieldRef`, `resourceFieldRef`, `secretKeyRef`,
  `configMapKeyRef`); finally `KUBECONFIG` (a kubeconfig for the API server, so stage code using a
  Kubernetes client works as if in-cluster) and `TERMINATION_MESSAGE_PATH` (the per-pod file that
  stands in for `terminationMessagePath`), which the runner always sets.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

# Variables copied from the runner's environment into every stage process.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)
PYTHON_NAMES = frozenset({"python", "python3", f"python3.{sys.version_info.minor}"})
POD_IP = "127.0.0.1"

SourceKey = tuple[str, str]  # ("secret" | "configmap", name)
Sources = Mapping[SourceKey, Mapping[str, str] | None]  # None: the object does not exist

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_MAP = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class PodConfigError(Exception):
    """The container's config cannot be resolved yet (kubelet: CreateContainerConfigError).

    A real kubelet keeps the pod Pending and retries, because the missing secret may appear.
    """


class PodSpecError(Exception):
    """The pod can never run here (kubelet/runtime: StartError); the pod fails at once."""


@dataclass(frozen=True)
class PodPaths:
    """The host files and directories of one pod."""

    root: Path  # <workdir>/pods/<namespace>/<name>-<uid8>
    volumes_root: Path  # <workdir>/volumes

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def log(self) -> Path:
        return self.root / "container.log"

    @property
    def termination_message(self) -> Path:
        return self.root / "termination-log"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name


@dataclass(frozen=True)
class Mount:
    """A container `volumeMount` and the host directory standing in for its volume."""

    path: str  # the container's mountPath
    host: Path
    read_only: bool = False


@dataclass(frozen=True)
class Launch:
    """Everything needed to start the process of a pod."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    host_dirs: list[Path]  # directories to create before starting
    mounts: tuple[Mount, ...] = ()


def with_interpreter_bin(path: str) -> str:
    """PATH with the running interpreter's directory first, so console scripts installed next to
    it (`extraction-operator guard ...`) resolve even when the virtualenv is not activated."""
    bindir = os.path.dirname(sys.executable)
    parts = path.split(os.pathsep) if path else []
    return os.pathsep.join([bindir, *(p for p in parts if p != bindir)])


def first_container(pod: JSON) -> JSON:
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise PodSpecError("spec.containers is empty: the pod has no container to run")
    return containers[0]


def referenced_sources(container: JSON) -> set[SourceKey]:
    """The secrets and config maps the container's `env` and `envFrom` read."""
    found: set[SourceKey] = set()
    for item in _list(container.get("envFrom")):
        for field, kind in (("secretRef", "secret"), ("configMapRef", "configmap")):
            ref = item.get(field)
            if isinstance(ref, dict) and ref.get("name"):
                found.add((kind, str(ref["name"])))
    for var in _list(container.get("env")):
        source = var.get("valueFrom")
        if not isinstance(source, dict):
            continue
        for field, kind in (("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")):
            ref = source.get(field)
            if isinstance(ref, dict) and ref.get("name"):
                found.add((kind, str(ref["name"])))
    return found


def decode_source(kind: str, obj: JSON) -> dict[str, str]:
    """The string data of a Secret (`data` is base64) or ConfigMap (`data` is plain)."""
    out: dict[str, str] = {}
    data = obj.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            if kind == "secret":
                try:
                    out[str(key)] = base64.b64decode(str(value), validate=True).decode(
                        "utf-8", "replace"
                    )
                except (binascii.Error, ValueError):
                    continue
            else:
                out[str(key)] = str(value)
    binary = obj.get("binaryData")
    if kind == "configmap" and isinstance(binary, dict):
        for key, value in binary.items():
            try:
                out[str(key)] = base64.b64decode(str(value), validate=True).decode(
                    "utf-8", "replace"
                )
            except (binascii.Error, ValueError):
                continue
    string_data = obj.get("stringData")
    if kind == "secret" and isinstance(string_data, dict):  # servers fold it into data; be lenient
        out.update({str(k): str(v) for k, v in string_data.items()})
    return out


def host_mounts(
    pod: JSON, container: JSON, paths: PodPaths, volume_dirs: Mapping[str, Path] | None = None
) -> list[tuple[str, Path]]:
    """(mountPath, host directory) for every volumeMount, longest mountPath first."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    volumes: dict[str, Path] = {}
    for vol in _list((pod.get("spec") or {}).get("volumes")):
        name = str(vol.get("name", ""))
        claim = vol.get("persistentVolumeClaim")
        if volume_dirs is not None and name in volume_dirs:
            volumes[name] = volume_dirs[name]
        elif isinstance(claim, dict) and claim.get("claimName"):
            volumes[name] = paths.volumes_root / namespace / f"pvc-{claim['claimName']}"
        else:
            volumes[name] = paths.volume(name)
    mounts: list[tuple[str, Path]] = []
    for mount in _list(container.get("volumeMounts")):
        mount_path = str(mount.get("mountPath") or "").rstrip("/")
        name = str(mount.get("name", ""))
        if not mount_path:
            continue
        if name not in volumes:
            raise PodSpecError(f"volumeMounts[{name!r}]: no volume named {name!r} in spec.volumes")
        host = volumes[name]
        sub = str(mount.get("subPath") or "").strip("/")
        if sub:
            if ".." in Path(sub).parts:
                raise PodSpecError(f"volumeMounts[{name!r}].subPath must not contain '..'")
            host = host / sub
        mounts.append((mount_path, host))
    return sorted(mounts, key=lambda m: len(m[0]), reverse=True)


def rewrite_path(value: str, mounts: list[tuple[str, Path]]) -> str:
    """Map a container path under a mountPath to the host directory standing in for it."""
    for mount_path, host in mounts:
        if value == mount_path:
            return str(host)
        if value.startswith(mount_path + "/"):
            return str(host) + value[len(mount_path) :]
    return value


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, others stay."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REF.sub(sub, value)


def field_value(pod: JSON, field_path: str, node_name: str) -> str:
    """The downward-API value of `fieldRef.fieldPath`."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    match = _FIELD_MAP.match(field_path)
    if match:
        values = meta.get(match.group(1)) or {}
        return str(values.get(match.group(2), "")) if isinstance(values, dict) else ""
    raise PodConfigError(f"fieldRef.fieldPath {field_path!r} is not supported by the job runner")


def resource_value(container: JSON, resource: str) -> str:
    """`resourceFieldRef` without a divisor: the limit, else the request, else the host's size."""
    res = container.get("resources") or {}
    kind, _, name = resource.partition(".")
    for section in ((res.get(kind) or {}), (res.get("requests") or {})):
        if isinstance(section, dict) and name in section:
            return str(section[name])
    if name == "cpu":
        return str(os.cpu_count() or 1)
    return str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _lookup(sources: Sources, kind: str, ref: JSON, where: str) -> str | None:
    """A key of a secret or config map; None when optional and missing."""
    name = str(ref.get("name", ""))
    key = str(ref.get("key", ""))
    optional = bool(ref.get("optional"))
    label = "secret" if kind == "secret" else "configmap"
    data = sources.get((kind, name))
    if data is None:
        if optional:
            return None
        raise PodConfigError(f'{where}: {label} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise PodConfigError(f'{where}: couldn\'t find key {key} in {label.title()} "{name}"')
    return data[key]


def container_env(pod: JSON, container: JSON, sources: Sources, node_name: str) -> dict[str, str]:
    """The env a container declares (`envFrom`, then `env`), resolved like the kubelet does."""
    env: dict[str, str] = {}
    for i, item in enumerate(_list(container.get("envFrom"))):
        prefix = str(item.get("prefix") or "")
        for field, kind in (("secretRef", "secret"), ("configMapRef", "configmap")):
            ref = item.get(field)
            if not isinstance(ref, dict):
                continue
            data = sources.get((kind, str(ref.get("name", ""))))
            if data is None:
                if ref.get("optional"):
                    continue
                raise PodConfigError(f'envFrom[{i}]: {kind} "{ref.get("name")}" not found')
            for key, text in data.items():
                if _ENV_NAME.match(prefix + key):
                    env[prefix + key] = text
    for var in _list(container.get("env")):
        name = str(var.get("name") or "")
        if not name:
            continue
        where = f"env {name}"
        source = var.get("valueFrom")
        if isinstance(source, dict):
            resolved: str | None
            if isinstance(source.get("fieldRef"), dict):
                resolved = field_value(pod, str(source["fieldRef"].get("fieldPath", "")), node_name)
            elif isinstance(source.get("resourceFieldRef"), dict):
                resolved = resource_value(
                    container, str(source["resourceFieldRef"].get("resource"))
                )
            elif isinstance(source.get("secretKeyRef"), dict):
                resolved = _lookup(sources, "secret", source["secretKeyRef"], where)
            elif isinstance(source.get("configMapKeyRef"), dict):
                resolved = _lookup(sources, "configmap", source["configMapKeyRef"], where)
            else:
                raise PodConfigError(f"{where}: valueFrom has no source the job runner supports")
            if resolved is not None:
                env[name] = resolved
        else:
            env[name] = expand(str(var.get("value") or ""), env)
    return env


def build_launch(
    pod: JSON,
    paths: PodPaths,
    sources: Sources,
    *,
    node_name: str,
    base_env: Mapping[str, str],
    volume_dirs: Mapping[str, Path] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Launch:
    """The process to start for a pod. Raises PodSpecError or PodConfigError."""
    container = first_container(pod)
    command = container.get("command")
    if not isinstance(command, list) or not command:
        raise PodSpecError(
            f"container {container.get('name')!r} has no command: the local job runner ignores "
            "images, so set spec.containers[0].command to the program to run"
        )
    args = container.get("args") or []
    if not isinstance(args, list):
        raise PodSpecError(f"container {container.get('name')!r}: args must be a list of strings")
    mounts = host_mounts(pod, container, paths, volume_dirs)
    meta = pod.get("metadata") or {}
    env = {name: base_env[name] for name in INHERITED_ENV if name in base_env}
    env["PATH"] = with_interpreter_bin(env.get("PATH", os.defpath))
    env["PYTHONUNBUFFERED"] = "1"
    env["HOSTNAME"] = str(meta.get("name") or "")
    env.update(extra_env or {})
    declared = container_env(pod, container, sources, node_name)
    env.update({name: rewrite_path(value, mounts) for name, value in declared.items()})
    env["KUBECONFIG"] = str(paths.kubeconfig)
    env["TERMINATION_MESSAGE_PATH"] = str(paths.termination_message)
    program, *rest = (expand(str(part), env) for part in [*command, *args])
    argv = [_program_path(program, mounts), *(rewrite_path(part, mounts) for part in rest)]
    if argv[0] in PYTHON_NAMES:
        argv[0] = sys.executable
    working_dir = str(container.get("workingDir") or "")
    mapped = rewrite_path(working_dir, mounts) if working_dir else ""
    cwd = Path(mapped) if mapped and mapped != working_dir else paths.workdir
    dirs = [paths.workdir, cwd, *(host for _, host in mounts)]
    read_only = {
        str(m.get("mountPath") or "").rstrip("/")
        for m in _list(container.get("volumeMounts"))
        if m.get("readOnly")
    }
    binds = tuple(Mount(path, host, path in read_only) for path, host in mounts)
    return Launch(argv=argv, env=env, cwd=cwd, host_dirs=dirs, mounts=binds)


def _program_path(program: str, mounts: list[tuple[str, Path]]) -> str:
    """The program runs from the host: a container's executable comes from its image, which is
    the host here. So a program that exists on the host keeps its path even when a volume is
    mounted over its directory (a pod with an emptyDir at /tmp, run from a checkout under /tmp);
    only a program that exists nowhere but in a volume (a script on the workspace) is rewritten.
    """
    if os.path.isabs(program) and os.path.exists(program):
        return program
    return rewrite_path(program, mounts)


def _list(value: object) -> list[JSON]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
