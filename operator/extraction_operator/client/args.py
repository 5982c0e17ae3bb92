"""The everyday subcommands' arguments, shared by `extraction-operator` and `kubectl xrun`.

Importing this module is cheap (no `kubernetes`): `extraction-operator guard` in every stage pod
builds the same parser. The connection flags (`--kubeconfig`, `--context`, `-n/--namespace`) are
accepted after the subcommand; the kubectl plugin also accepts them before it (`kubectl xrun -n ns
get RUN`), so there the subcommand's copies default to "not given" rather than overwriting them.
"""

from __future__ import annotations

import argparse
from typing import Any

CLIENT_COMMANDS = ("get", "watch", "logs", "redrive", "suspend", "resume")


def add_connection_flags(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--kubeconfig",
        default=default,
        help="kubeconfig file; default: $KUBECONFIG, ~/.kube/config, else the pod's account",
    )
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument(
        "-n",
        "--namespace",
        default=default,
        help="namespace of the run; default: the context's namespace, else default",
    )


def _run(args: argparse.Namespace) -> int:
    from .commands import run_client_command

    return run_client_command(args)


def add_client_commands(sub: Any, *, suppress_connection_defaults: bool = False) -> None:
    """Add get, watch, logs, redrive, suspend and resume to a subparsers action."""

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=description
        )
        add_connection_flags(parser, suppress=suppress_connection_defaults)
        parser.set_defaults(func=_run, client_command=name)
        return parser

    get = command(
        "get",
        "show a run as a tree of its nodes (every run of the namespace without RUN)",
        "Show runs as trees by DAG order: node phases, attempts, durations, progress and "
        "circuit state.",
    )
    get.add_argument("run", nargs="?", metavar="RUN", help="the ExtractionRun; default: all")
    get.add_argument(
        "-o", "--output", choices=["tree", "json", "yaml"], default="tree", help="format"
    )

    watch = command(
        "watch",
        "follow a run live until it finishes (exit 0 Succeeded, 1 Failed)",
        "Follow a run live with a watch: redrawn in place on a terminal, one line per change "
        "otherwise. Exits when the run finishes: 0 when it Succeeded, 1 when it Failed.",
    )
    watch.add_argument("run", metavar="RUN")
    watch.add_argument(
        "--forever",
        action="store_true",
        help="keep watching after the run finishes (a re-drive starts it again); Ctrl-C ends",
    )

    logs = command(
        "logs",
        "print the log of a node's attempt (every node's current attempt without NODE)",
        "Print a stage's output through the API server (pods/log). NODE is a node name as "
        "`get` shows it, e.g. chunk or mentions[2].",
    )
    logs.add_argument("run", metavar="RUN")
    logs.add_argument("node", nargs="?", metavar="NODE", help="default: every launched node")
    logs.add_argument(
        "--attempt", type=int, default=None, help="attempt number; default: the current one"
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep streaming while the stage runs"
    )

    redrive = command(
        "redrive",
        "reset a run's Failed and Skipped nodes to Pending and resume it",
        "Re-drive a run: sets the extraction.dev/redrive annotation to a new value.",
    )
    redrive.add_argument("run", metavar="RUN")
    redrive.add_argument(
        "--force", action="store_true", help="re-drive even when nothing has failed"
    )

    suspend = command(
        "suspend",
        "stop launching new Jobs of a run (spec.suspend=true)",
        "Suspend a run: nothing new is launched; running Jobs finish.",
    )
    suspend.add_argument("run", metavar="RUN")
    resume = command(
        "resume", "resume a suspended run (spec.suspend=false)", "Resume a suspended run."
    )
    resume.add_argument("run", metavar="RUN")
