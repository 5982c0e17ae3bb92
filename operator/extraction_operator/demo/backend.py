"""The real demo backend: a threaded local cluster with the embedded operator running against it.

Runs and Jobs are read with the official `kubernetes` client through the cluster's kubeconfig, the
way `kubectl` or a script would, and kept as the raw JSON the API server sent (`_preload_content=
False`), so `--output json` shows exactly what is stored, annotations included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from extraction_operator.api import constants
from extraction_operator.examples.runtime import run_output_dir
from extraction_operator.localcluster.cluster import LocalCluster, ThreadedLocalCluster

from .manifests import RunRef

if TYPE_CHECKING:
    from extraction_operator.controller.embedded import EmbeddedOperator
from .status import mapping, text

log = logging.getLogger(__name__)

JSON = Mapping[str, Any]
OPERATOR_READY_SECONDS = 60.0
RESYNC_SECONDS = 2.0
# The client's own function is untyped; name its result type once here.
_new_client_from_config: Callable[..., Any] = config.new_client_from_config


class LocalDemoBackend:
    """`with LocalDemoBackend(workdir) as backend:` starts cluster and operator; stops both.

    `start_operator=False` leaves the operator out, for tests that write run status by hand."""

    def __init__(
        self,
        workdir: Path,
        *,
        start_operator: bool = True,
        ready_seconds: float = OPERATOR_READY_SECONDS,
    ) -> None:
        self.workdir = workdir
        self.start_operator = start_operator
        self.ready_seconds = min(ready_seconds, OPERATOR_READY_SECONDS)
        self._cluster: ThreadedLocalCluster | None = None
        self._operator: EmbeddedOperator | None = None
        self._api_client: Any = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalDemoBackend:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _start(self) -> None:
        cluster = self._cluster = LocalCluster.threaded(self.workdir).start()
        cluster.apply_crds()
        self._api_client = _new_client_from_config(config_file=str(cluster.kubeconfig))
        if not self.start_operator:
            return
        # Imported here so that reading runs (and its tests) does not need the operator's stack.
        from extraction_operator.controller.embedded import EmbeddedOperator

        operator = self._operator = EmbeddedOperator(
            kubeconfig=str(cluster.kubeconfig), namespaces=None, resync_seconds=RESYNC_SECONDS
        ).start()
        if not operator.ready.wait(self.ready_seconds):
            raise RuntimeError(f"the operator did not start within {self.ready_seconds:g}s")

    def _stop(self) -> None:
        operator, self._operator = self._operator, None
        cluster, self._cluster = self._cluster, None
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        try:
            if operator is not None:
                operator.stop()
        except RuntimeError:
            # The runs are over and reported; an operator crash on the way out belongs in the log,
            # not in the demo's exit code.
            log.exception("the embedded operator failed")
        finally:
            if cluster is not None:
                cluster.stop()

    @property
    def cluster(self) -> ThreadedLocalCluster:
        if self._cluster is None:
            raise RuntimeError("the demo cluster is not running")
        return self._cluster

    # ---- DemoBackend -------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def apply(self, obj: JSON) -> None:
        self.cluster.apply(dict(obj))

    def read_runs(self, refs: Sequence[RunRef]) -> dict[str, JSON | None]:
        api = client.CustomObjectsApi(self._api_client)
        runs: dict[str, JSON | None] = {}
        for ref in refs:
            try:
                response: Any = api.get_namespaced_custom_object(
                    constants.GROUP,
                    constants.VERSION,
                    ref.namespace,
                    constants.PLURAL,
                    ref.name,
                    _preload_content=False,
                )
            except ApiException as error:
                if error.status != 404:
                    raise
                runs[ref.key] = None
            else:
                runs[ref.key] = json.loads(response.data)
        return runs

    def read_jobs(self, runs: Sequence[JSON]) -> list[JSON]:
        """The Jobs each run owns (by ownerReference uid, so a same-named older run's Jobs are not
        mixed in), in creation order."""
        api = client.BatchV1Api(self._api_client)
        jobs: list[JSON] = []
        for namespace in sorted({_namespace(run) for run in runs}):
            response: Any = api.list_namespaced_job(namespace, _preload_content=False)
            items = json.loads(response.data).get("items") or []
            owners = {_uid(run) for run in runs if _namespace(run) == namespace}
            jobs.extend(job for job in items if owners & _owner_uids(job))
        return sorted(jobs, key=_creation_order)

    def read_events(self, runs: Sequence[JSON]) -> list[JSON]:
        """The Events about the runs themselves (CircuitOpened, CircuitClosed, ...), oldest first,
        matched by the run's uid so a same-named older run's Events are left out."""
        api = client.CoreV1Api(self._api_client)
        events: list[JSON] = []
        for namespace in sorted({_namespace(run) for run in runs}):
            response: Any = api.list_namespaced_event(namespace, _preload_content=False)
            items = json.loads(response.data).get("items") or []
            uids = {_uid(run) for run in runs if _namespace(run) == namespace} - {""}
            events.extend(
                event
                for event in items
                if text(mapping(mapping(event).get("involvedObject")).get("uid")) in uids
            )
        return sorted(events, key=_event_order)

    def outputs_dir(self, run: JSON) -> Path | None:
        """Where the run's stages wrote their files on this machine, if they wrote any.

        The job runner maps a workspace claim to a host directory under the cluster's work
        directory; the example stages write into `<workspace>/<run>-<uid prefix>`."""
        meta = mapping(run.get("metadata"))
        name = run_output_dir(Path(), text(meta.get("name")), text(meta.get("uid"))).name
        claim = text(
            mapping(
                mapping(mapping(run.get("spec")).get("workspace")).get("persistentVolumeClaim")
            ).get("claimName")
        )
        if not name or not claim:
            return None
        pattern = f"**/volumes/{_namespace(run)}/pvc-{claim}/{name}"
        return next((path for path in sorted(self.workdir.glob(pattern)) if path.is_dir()), None)


def _namespace(run: JSON) -> str:
    return text(mapping(run.get("metadata")).get("namespace")) or "default"


def _uid(run: JSON) -> str:
    return text(mapping(run.get("metadata")).get("uid"))


def _owner_uids(obj: JSON) -> set[str]:
    references = mapping(obj.get("metadata")).get("ownerReferences")
    if not isinstance(references, list):
        return set()
    return {text(mapping(ref).get("uid")) for ref in references} - {""}


def _event_order(event: JSON) -> tuple[str, int, str]:
    """By time, then by resourceVersion: Event timestamps have whole seconds, and several
    transitions often fall in one second (an emulator or etcd revision grows with each write)."""
    meta = mapping(event.get("metadata"))
    when = (
        text(event.get("eventTime"))
        or text(event.get("firstTimestamp"))
        or text(meta.get("creationTimestamp"))
    )
    version = text(meta.get("resourceVersion"))
    return (when, int(version) if version.isdigit() else 0, text(meta.get("name")))


def _creation_order(job: JSON) -> tuple[str, str]:
    meta = mapping(job.get("metadata"))
    return (text(meta.get("creationTimestamp")), text(meta.get("name")))
