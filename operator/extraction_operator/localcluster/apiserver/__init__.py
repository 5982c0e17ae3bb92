"""A Kubernetes API server emulator for tests and `make demo`: real semantics, real HTTP.

Why our own aiohttp app and not kmock's `KubernetesEmulator`: kmock is a request-mocking DSL whose
stateful layer merges dicts per request. It has no resourceVersion (so no 409 conflicts and no
watch resume), ignores label and field selectors, serves `/status` as the main object, picks the
patch type from the payload and has no generation, finalizer, CRD or garbage collection model.
Each of those touches its core request path, so extending it would mean replacing most of it
while working around its DSL. A focused aiohttp app, in small modules with one job each (store,
history, watches, routing, patches, selectors, schema, CEL, discovery, OpenAPI, tables, faults),
is simpler to reason about and follows the real API server wherever clients can tell.

Public interface:

    server = ApiServer()                  # host="127.0.0.1", port=0 (a free port)
    await server.start(); server.url      # "http://127.0.0.1:<port>"
    server.write_kubeconfig(path)         # for kubectl / kopf / the kubernetes client
    server.faults.fail("patch", "extractionruns", times=2)   # see faults.FaultInjector
    server.request_log.records(verb="patch")
    server.store                          # in-process access (get/list/create/patch/delete)
    server.pod_logs = fn                  # (namespace, pod, container) -> text, for `kubectl logs`
    await server.stop()

    with ApiServerThread() as server: ... # the same, on a loop in a daemon thread

Like a real cluster it has the system namespaces, a `kube-root-ca.crt` ConfigMap in every
namespace (`rootca`), one Event resource served as core/v1 and events.k8s.io/v1 (`eventsv1`), and
it reads requests as the API server's Go decoders do (`query`, `timestamps`, `gotime`): a
non-integer `timeoutSeconds`, an Event `eventTime` without microseconds or a custom resource
without `kind` fail with the same status and message.

Differences from a real API server, knowingly:
- no controllers beyond what the store does itself (garbage collection, namespace deletion, the
  root CA ConfigMap): no `default` ServiceAccount, no Job controller (the local cluster's job
  runner plays it), no node lifecycle;
- no `managedFields`; Event validation covers the reporting fields, `eventTime` and `type`, not
  every rule;
- lists always serve the latest state (no `resourceVersion`/`continue` snapshots);
- CEL validation rules run only when cel-python is installed (see `cel`);
- strategic merge patch is the subset documented in `patches`;
- server-side apply (`application/apply-patch+yaml`) is a merge patch that creates a missing
  object, without field ownership;
- no authentication or authorization; simplified Table columns for built-ins;
- `dryRun` is refused (400) rather than written;
- protobuf request bodies are refused (415): kubectl's typed generators (`kubectl create job`)
  do not work, `kubectl apply -f` / `get` / `describe` / `delete` / `label` do.
"""

from __future__ import annotations

from .errors import ApiError
from .faults import FaultInjector, FaultRule, RequestLog, RequestRecord
from .kubeconfig import kubeconfig, write_kubeconfig
from .resources import ResourceRegistry, ResourceType
from .server import ApiServer
from .store import Store
from .thread import ApiServerThread

__all__ = [
    "ApiError",
    "ApiServer",
    "ApiServerThread",
    "FaultInjector",
    "FaultRule",
    "RequestLog",
    "RequestRecord",
    "ResourceRegistry",
    "ResourceType",
    "Store",
    "kubeconfig",
    "write_kubeconfig",
]
