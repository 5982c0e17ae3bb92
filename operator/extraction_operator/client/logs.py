"""`logs RUN [NODE]`: find the node's Job for an attempt, its pod(s), and stream their output.

The current attempt's Job is `status.nodes[NODE].jobName`; an earlier one is found by the labels
every stage Job carries (`extraction.dev/run`, `extraction.dev/attempt`) and its node annotation,
owned by this very run. The pods are the Job's (`job-name` label), and their output comes from the
API server's `pods/log` subresource, which asks the node's kubelet: a node that does not serve
logs is named in the error with the API server's own words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from kubernetes.client.exceptions import ApiException

from extraction_operator.api.constants import ANNOTATION_NODE, LABEL_ATTEMPT, LABEL_RUN
from extraction_operator.demo.status import JSON, NodeRow, mapping, node_rows, run_key, text
from extraction_operator.planner.jobs import CONTAINER_NAME
from extraction_operator.planner.naming import run_label_value

from .connect import Connection
from .errors import CliError, api_message, api_status, describe_api_error
from .runs import api_failure

LOG_REQUEST_TIMEOUT = (10, 300)  # connect, and the longest silence of a followed log
# pods/log refusals that mean "the container has nothing to show yet", in the API server's words.
_NOT_STARTED = ("waiting to start", "ContainerCreating", "PodInitializing", "is not running")


@dataclass(frozen=True)
class LogTarget:
    """One pod whose output is shown, and what it ran."""

    node: str
    attempt: int
    job: str
    pod: str
    pod_node: str  # spec.nodeName: the node whose kubelet serves the log
    container: str


def _job_of_attempt(conn: Connection, run: JSON, node: str, attempt: int) -> str | None:
    """The Job of `node`'s attempt `attempt`, by labels, node annotation and owner."""
    meta = mapping(run.get("metadata"))
    selector = f"{LABEL_RUN}={run_label_value(text(meta.get('name')))},{LABEL_ATTEMPT}={attempt}"
    try:
        listed = conn.batch.list_namespaced_job(conn.namespace, label_selector=selector)
    except ApiException as error:
        raise api_failure(f"list the Jobs of {run_key(run)}", error) from None
    for job in listed.items or []:
        annotations = job.metadata.annotations or {}
        refs = job.metadata.owner_references or []
        if annotations.get(ANNOTATION_NODE) == node and any(
            ref.uid == text(meta.get("uid")) for ref in refs
        ):
            return str(job.metadata.name)
    return None


def _pods_of(conn: Connection, job: str) -> list[Any]:
    try:
        listed = conn.core.list_namespaced_pod(conn.namespace, label_selector=f"job-name={job}")
    except ApiException as error:
        raise api_failure(f"list the pods of Job {job}", error) from None
    pods = list(listed.items or [])
    return sorted(pods, key=lambda pod: (str(pod.metadata.creation_timestamp), pod.metadata.name))


def _container(pod: Any) -> str:
    names = [c.name for c in (pod.spec.containers or [])] if pod.spec else []
    return CONTAINER_NAME if CONTAINER_NAME in names or not names else str(names[0])


def _row(run: JSON, node: str) -> NodeRow:
    rows = {row.name: row for row in node_rows(run)}
    if node not in rows:
        known = ", ".join(rows) or "none"
        raise CliError(f"extractionrun {run_key(run)} has no node {node!r} (its nodes: {known})")
    return rows[node]


def find_targets(
    conn: Connection, run: JSON, node: str | None, attempt: int | None
) -> tuple[list[LogTarget], list[str]]:
    """The pods to show and, for nodes skipped when showing every node, why each was skipped.

    With a NODE every problem is an error; without one, nodes not launched (or without the asked
    attempt) are left out quietly, and others whose pods cannot be found (deleted by a cleanup)
    are skipped with a note; it is an error only when nothing at all is left to show."""
    rows = [_row(run, node)] if node is not None else node_rows(run)
    targets: list[LogTarget] = []
    skipped: list[str] = []
    for row in rows:
        try:
            targets.extend(_targets_of(conn, run, row, attempt))
        except CliError as error:
            if node is not None:
                raise
            if row.attempts and (attempt is None or attempt <= row.attempts):
                skipped.append(error.message)
    if node is None and not targets:
        if skipped:
            raise CliError("no pod left to show: " + "; ".join(skipped))
        raise CliError(f"extractionrun {run_key(run)} has launched nothing yet: no logs")
    return targets, skipped


def _targets_of(conn: Connection, run: JSON, row: NodeRow, attempt: int | None) -> list[LogTarget]:
    key = run_key(run)
    if row.attempts == 0:
        raise CliError(f"node {row.name} of {key} has not been launched yet ({row.phase})")
    wanted = row.attempts if attempt is None else attempt
    if wanted < 1 or wanted > row.attempts:
        raise CliError(
            f"node {row.name} of {key} has had {row.attempts} attempt(s); "
            f"there is no attempt {wanted}"
        )
    job = row.job_name if wanted == row.attempts and row.job_name else None
    job = job or _job_of_attempt(conn, run, row.name, wanted)
    if job is None:
        raise CliError(f"the Job of node {row.name} attempt {wanted} of {key} is gone")
    pods = _pods_of(conn, job)
    if not pods:
        raise CliError(
            f"Job {job} (node {row.name} attempt {wanted}) has no pods: not created yet, or "
            "deleted since (a cleanup of finished attempts, or by hand)"
        )
    return [
        LogTarget(
            node=row.name,
            attempt=wanted,
            job=job,
            pod=str(pod.metadata.name),
            pod_node=str((pod.spec.node_name if pod.spec else None) or "none"),
            container=_container(pod),
        )
        for pod in pods
    ]


def _log_error(target: LogTarget, error: ApiException) -> CliError:
    """What a refused pods/log means, for a person."""
    status, message = api_status(error), api_message(error)
    where = f"pod {target.pod} (node {target.node} attempt {target.attempt})"
    if status == 404:
        return CliError(f"{where} is gone: {describe_api_error(error)}", status=status)
    if status == 403:
        return CliError(f"not allowed to read the log of {where}: {message}", status=status)
    if status == 400 and any(part in message for part in _NOT_STARTED):
        return CliError(f"{where} has no output yet: {message}", status=status)
    return CliError(
        f"the node serving pod {target.pod} ({target.pod_node}) does not serve logs: "
        f"{describe_api_error(error)}",
        status=status,
    )


def _lines(response: Any) -> Iterator[str]:
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


class LogPrinter:
    """Writes whole lines to one stream from several pods' streams at once."""

    def __init__(self, out: TextIO, *, prefix: bool) -> None:
        self._out = out
        self._prefix = prefix
        self._lock = threading.Lock()

    def write(self, target: LogTarget, line: str) -> None:
        with self._lock:
            self._out.write((f"[{target.node}] " if self._prefix else "") + line + "\n")
            self._out.flush()


def stream_one(conn: Connection, target: LogTarget, printer: LogPrinter, *, follow: bool) -> None:
    """Copy one pod's log to the printer (until the container ends, with `follow`)."""
    try:
        response = conn.core.read_namespaced_pod_log(
            target.pod,
            conn.namespace,
            container=target.container,
            follow=follow,
            _preload_content=False,
            _request_timeout=LOG_REQUEST_TIMEOUT,
        )
    except ApiException as error:
        raise _log_error(target, error) from None
    try:
        for line in _lines(response):
            printer.write(target, line)
    finally:
        response.release_conn()


def show_logs(
    conn: Connection,
    targets: list[LogTarget],
    printer: LogPrinter,
    *,
    follow: bool,
) -> list[str]:
    """Stream every target; one after another, or all at once when following several. A target
    that fails does not stop the others; returns what failed, one message each."""
    failures: list[str] = []

    def one(target: LogTarget) -> None:
        try:
            stream_one(conn, target, printer, follow=follow)
        except CliError as error:
            failures.append(error.message)
        except Exception as error:  # a dropped connection ends this stream, not the others
            failures.append(f"the log of pod {target.pod} broke off: {type(error).__name__}")

    if follow and len(targets) > 1:
        threads = [threading.Thread(target=one, args=(t,), daemon=True) for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for target in targets:
            one(target)
    return failures
