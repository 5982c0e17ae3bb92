"""What a container runtime refuses before a process exists, said in the runtime's own words.

The process node ignores images and runs a container's command on the host, wrapped in a shell
that enters the pod's mount namespace; left alone, a malformed image reference would run anyway
and a command that cannot be executed would fail inside that shell as an ordinary exit 127. A real
kubelet reports both before the container runs: `InvalidImageName` (a waiting state that never
clears) for a reference the image library cannot parse, and a `StartError` termination (exit code
128) when runc cannot exec the command. The operator reads exactly those reasons, so the node must
produce them; these pure checks decide, and the kubelet reports.

The image grammar is the one of the reference library that containerd and CRI-O use
(`distribution/reference`): `[domain[:port]/]path[:tag][@digest]`, lowercase path components,
at most 255 characters of name. A missing image is left to the API server, which refuses pods
without one (the emulator tier's pods may lack it, since the process runner needs only a command).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?$")
MAX_NAME_LENGTH = 255


def image_problem(image: object) -> str | None:
    """The kubelet's `InvalidImageName` message for an unparseable reference, else None."""
    if not isinstance(image, str) or not image:
        return None
    match = _REFERENCE.match(image)
    if match is not None and len(match.group("name")) <= MAX_NAME_LENGTH:
        return None
    return (
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
        "invalid reference format"
    )


def exec_problem(program: str, search_path: str, cwd: Path) -> str | None:
    """runc's reason for refusing to exec `program` (resolved as execve with PATH would), or
    None when it can be executed."""
    if "/" not in program:
        if shutil.which(program, path=search_path) is None:
            return f'exec: "{program}": executable file not found in $PATH'
        return None
    path = Path(program) if os.path.isabs(program) else cwd / program
    if not path.exists():
        return f'exec: "{program}": stat {program}: no such file or directory'
    if path.is_dir() or not os.access(path, os.X_OK):
        return f'exec: "{program}": permission denied'
    return None
