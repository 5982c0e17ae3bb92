"""`extraction-operator cluster`: build (or reuse) the control plane and run it in the foreground.

For people and for `make cluster`: the control plane plus the process kubelet as its node (unless
`--no-node`), exactly as the real test tier runs them. It prints the admin kubeconfig's path, then
serves until interrupted (Ctrl-C or SIGTERM), stopping every component cleanly on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .build import BuildError, build
from .cluster import ControlPlane, StartError
from .node import process_node


def run_cluster(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        binaries = build()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.build_only:
        print(binaries.directory)
        return 0
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    state = Path(args.state_dir) if args.state_dir else None
    try:
        with contextlib.ExitStack() as stack:
            plane = stack.enter_context(
                ControlPlane(binaries, state_dir=state, keep_state=state is not None)
            )
            if not args.no_node:
                stack.enter_context(process_node(plane, plane.root / "node"))
            print(f"kubeconfig: {plane.admin_kubeconfig}", flush=True)
            stop.wait()
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
