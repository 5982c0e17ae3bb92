"""The `extraction-operator` command: one entry point, a subcommand per job.

Subcommands import their implementation lazily so that `extraction-operator guard` inside a stage
pod does not pay for importing kopf, and `extraction-operator crd` works without a cluster.

The everyday commands against any cluster (`get`, `watch`, `logs`, `redrive`, `suspend`,
`resume`; `client/`) are also the kubectl plugin `kubectl xrun ...`: kubectl runs the console
script `kubectl-xrun` (`kubectl_plugin`) with the words after `xrun`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .client.args import add_client_commands, add_connection_flags

PROG = "extraction-operator"
PLUGIN_PROG = "kubectl xrun"


def _cmd_crd(args: argparse.Namespace) -> int:
    from .api.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .controller.main import run_operator

    return run_operator(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo.main import run_demo

    return run_demo(args)


def _cmd_guard(args: argparse.Namespace) -> int:
    from .stage.guard import run_guard

    return run_guard(args)


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .controlplane.command import run_cluster

    return run_cluster(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run multi-stage LLM extraction pipelines as Kubernetes Jobs.",
    )
    parser.set_defaults(cli_prog=PROG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crd = sub.add_parser("crd", help="print the ExtractionRun CRD generated from the models")
    crd.set_defaults(func=_cmd_crd)

    run = sub.add_parser("run", help="run the operator (kopf underneath)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        help="watch this namespace (repeatable; globs allowed); default: cluster-wide",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    run.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file; default: in-cluster service account, else $KUBECONFIG",
    )
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus port; 0 disables")
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="kopf liveness endpoint URL; empty disables",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", default="plain", choices=["plain", "full", "json"])
    run.add_argument(
        "--peering",
        default="",
        help="kopf peering object name for HA (two replicas, one active); empty: standalone",
    )
    run.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority of this replica (highest is active); default: random, so the "
        "replicas of one Deployment never tie (kopf pauses every replica on a tie)",
    )
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=30.0,
        help="period of the resync that re-drives runs whose timers fall due",
    )
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo", help="start a local cluster and the operator, and run an example pipeline"
    )
    demo.add_argument("manifests", nargs="*", help="ExtractionRun manifests (default: the example)")
    demo.add_argument("--output", choices=["live", "json"], default="live")
    demo.add_argument("--timeout", type=float, default=300.0, help="give up after SECONDS")
    demo.add_argument("--serve", action="store_true", help="keep the API up and print kubeconfig")
    demo.add_argument(
        "--outage", type=float, default=0.0, help="make the fake LLM provider fail for SECONDS"
    )
    demo.set_defaults(func=_cmd_demo)

    guard = sub.add_parser(
        "guard",
        help="run CMD behind shared circuit breakers (exit 75 when a circuit is open)",
        usage="extraction-operator guard --circuit NAME [--circuit NAME] -- CMD [ARGS...]",
    )
    guard.add_argument("--circuit", action="append", required=True, dest="circuits")
    guard.add_argument(
        "--failure-exit-codes",
        default="",
        help="comma-separated exit codes of CMD that count as provider failures",
    )
    guard.add_argument("cmd", nargs=argparse.REMAINDER)
    guard.set_defaults(func=_cmd_guard)
    cluster = sub.add_parser(
        "cluster",
        help="build (cached) and run a real Kubernetes control plane on loopback, for tests",
    )
    cluster.add_argument("--state-dir", default=None, help="keep PKI, kubeconfigs and logs here")
    cluster.add_argument("--build-only", action="store_true", help="build, print the bin dir")
    cluster.add_argument("--no-node", action="store_true", help="the control plane alone")
    cluster.set_defaults(func=_cmd_cluster)
    add_client_commands(sub)
    return parser


def build_plugin_parser() -> argparse.ArgumentParser:
    """`kubectl xrun COMMAND ...`: the everyday commands alone; the connection flags may come
    before the command too (`kubectl xrun -n team get corpus`)."""
    parser = argparse.ArgumentParser(
        prog=PLUGIN_PROG,
        description="ExtractionRuns at a glance: get, watch, logs, redrive, suspend, resume.",
    )
    add_connection_flags(parser)
    parser.set_defaults(cli_prog=PLUGIN_PROG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_client_commands(sub, suppress_connection_defaults=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def kubectl_plugin(argv: Sequence[str] | None = None) -> int:
    """The `kubectl-xrun` console script: kubectl passes it the words after `kubectl xrun`."""
    parser = build_plugin_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
