"""Run one everyday subcommand; every failure becomes one line on stderr and an exit code.

Exit codes: 0 done (`watch`: the run Succeeded); 1 a failure (`watch`: the run Failed, stalled or
was deleted; a refused re-drive, a missing run, an unreachable cluster, a log the node does not
serve); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

import urllib3

from extraction_operator.demo.view import LiveView

from . import actions, logs, show
from .connect import Connection, connect
from .errors import CliError
from .runs import get_run, list_runs
from .watching import KubeRunSource, RunWatcher, follow_run

EXIT_INTERRUPTED = 130
Handler = Callable[[Connection, argparse.Namespace, TextIO, TextIO], int]


def _now() -> datetime:
    return datetime.now(UTC)


def cmd_get(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    runs = [get_run(conn, args.run)] if args.run else list_runs(conn)
    if args.output != "tree":
        out.write(show.document_text(runs, args.output, single=bool(args.run)))
        return 0
    if not runs:
        err.write(f"No extractionruns found in namespace {conn.namespace}.\n")
        return 0
    out.write(show.tree_text(runs, _now(), out))
    return 0


def cmd_watch(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    get_run(conn, args.run)  # a missing run (or CRD) is an error now, not an empty screen
    view = LiveView(out, layout="tree")
    last = follow_run(
        lambda note: RunWatcher(KubeRunSource(conn, args.run), on_trouble=note),
        view,
        forever=args.forever,
    )
    if last is None:
        return show.EXIT_FAILED
    if not view.interactive:
        # The changes went by one line each; end with the whole tree, as `get` shows it.
        out.write("\n" + show.tree_text([last], _now(), out))
        out.flush()
    return show.finished_exit_code(last)


def cmd_logs(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    run = get_run(conn, args.run)
    targets, skipped = logs.find_targets(conn, run, args.node, args.attempt)
    for message in skipped:
        err.write(f"{args.cli_prog} logs: skipped: {message}\n")
    printer = logs.LogPrinter(out, prefix=args.node is None)
    failures = logs.show_logs(conn, targets, printer, follow=args.follow)
    for message in failures:
        err.write(f"{args.cli_prog} logs: {message}\n")
    return 1 if failures else 0


def cmd_redrive(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(actions.redrive(conn, args.run, force=args.force, now=_now()) + "\n")
    return 0


def cmd_suspend(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(actions.set_suspend(conn, args.run, suspend=True) + "\n")
    return 0


def cmd_resume(conn: Connection, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(actions.set_suspend(conn, args.run, suspend=False) + "\n")
    return 0


HANDLERS: dict[str, Handler] = {
    "get": cmd_get,
    "watch": cmd_watch,
    "logs": cmd_logs,
    "redrive": cmd_redrive,
    "suspend": cmd_suspend,
    "resume": cmd_resume,
}


def run_client_command(
    args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    prog = getattr(args, "cli_prog", "extraction-operator")
    args.cli_prog = prog
    command = str(args.client_command)
    conn: Connection | None = None
    try:
        conn = connect(
            kubeconfig=getattr(args, "kubeconfig", None),
            context=getattr(args, "context", None),
            namespace=getattr(args, "namespace", None),
        )
        return HANDLERS[command](conn, args, out, err)
    except CliError as error:
        err.write(f"{prog} {command}: {error.message}\n")
        return error.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (urllib3.exceptions.HTTPError, OSError) as error:
        where = conn.host if conn is not None else "the API server"
        err.write(f"{prog} {command}: cannot reach {where}: {type(error).__name__}: {error}\n")
        return 1
    finally:
        out.flush()
        if conn is not None:
            conn.close()
