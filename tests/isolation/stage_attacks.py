"""A compromised stage: run as the command of a real stage pod, it tries every escalation through
the stage identity that issue 12 lists (and a few more), with the pod's own bound ServiceAccount
token, and prints the API server's answer to each on stdout:

    ATTACK {"case": "own-spec-image", "status": 422, "message": "..."}
    ...
    ATTACK DONE

    python stage_attacks.py SIBLING STRANGER

SIBLING is another run of the same ServiceAccount (in flight), STRANGER a run of another one. The
pod's own run, namespace and the API server come from the env the operator and the node set.
Plain urllib on purpose: the requests are exactly the ones listed here, nothing a client library
adds or retries. Run as a script, never collected.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
BREAKERS = "extraction.dev/circuit-breakers"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"

NAMESPACE = os.environ["EXTRACTION_NAMESPACE"]
OWN = os.environ["EXTRACTION_RUN"]
RUNS = f"/apis/extraction.dev/v1alpha1/namespaces/{NAMESPACE}/extractionruns"
SERVER = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"


def request(
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    """(status, the Status message or '', the parsed body) of one request with the pod's token."""
    with open(f"{ACCOUNT_DIR}/token") as handle:
        token = handle.read().strip()
    context = ssl.create_default_context(cafile=f"{ACCOUNT_DIR}/ca.crt")
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(SERVER + path, data=data, method=method)
    call.add_header("Authorization", f"Bearer {token}")
    call.add_header("Accept", "application/json")
    if data is not None:
        call.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        call.add_header(name, value)
    try:
        with urllib.request.urlopen(call, context=context, timeout=10) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        status = error.code
    try:
        parsed = json.loads(text.splitlines()[0]) if text else None
    except ValueError:
        parsed = None
    message = parsed.get("message", "") if isinstance(parsed, dict) and status >= 400 else ""
    return status, message, parsed


def breaker_document(state: str) -> str:
    if state == "closed":
        circuit: dict[str, Any] = {"state": "closed", "failures": 0, "generation": 9}
    else:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        circuit = {"state": "open", "failures": 999, "openedAt": now, "generation": 9,
                   "lastError": "forged by another run's stage"}  # fmt: skip
    return json.dumps({"v": 1, "circuits": {"llm": circuit}})


SSA = "?fieldManager=evil&force=true"


def annotate(key: str, value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {key: value}}}


def meta(**fields: Any) -> dict[str, Any]:
    return {"metadata": fields}


def spec(**fields: Any) -> dict[str, Any]:
    return {"spec": fields}


def patch(path: str, body: Any, content_type: str = MERGE) -> tuple[str, str, Any, str]:
    return ("PATCH", path, body, content_type)


def cases(
    sibling: str, stranger: str, own_object: dict[str, Any]
) -> list[tuple[str, tuple[Any, ...]]]:
    """(case, request arguments): every attempt, in the order they are made."""
    own, sib, other = f"{RUNS}/{OWN}", f"{RUNS}/{sibling}", f"{RUNS}/{stranger}"
    replaced = dict(own_object)
    replaced["spec"] = {**own_object["spec"], "parallelism": 7}
    apply_label = {"apiVersion": "extraction.dev/v1alpha1", "kind": "ExtractionRun",
                   "metadata": {"name": OWN, "labels": {"evil": "yes"}}}  # fmt: skip
    apply_sibling = {**apply_label, "metadata": {"name": sibling, "labels": {"evil": "yes"}}}
    owner = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "evil",
              "uid": "6b0b4a4e-0000-4000-8000-000000000000"}]  # fmt: skip
    new_run = {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "metadata": {"name": "forged-run"},
        "spec": {"image": "evil:latest", "serviceAccountName": "other-stage",
                 "stages": [{"name": "x", "command": ["sh", "-c", "id"]}]},
    }  # fmt: skip
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "stage-escalation"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "stage-escalation"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "extraction-stage",
                      "namespace": NAMESPACE}],
    }  # fmt: skip
    token = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"audiences": [], "expirationSeconds": 600}}  # fmt: skip
    impersonate = {"Impersonate-User": f"system:serviceaccount:{NAMESPACE}:other-stage"}
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}"
    core = f"/api/v1/namespaces/{NAMESPACE}"
    wedge = meta(finalizers=["evil.example/wedge"])
    forged_open = annotate(BREAKERS, breaker_document("open"))
    return [
        # --- its own run: only the breaker annotation, only by patch
        ("own-spec-serviceAccountName", patch(own, spec(serviceAccountName="other-stage"))),
        ("own-spec-image", patch(own, spec(image="evil:latest"))),
        ("own-spec-env", patch(own, spec(env=[{"name": "PYTHONPATH", "value": "/evil"}]))),
        ("own-spec-envFrom", patch(own, spec(envFrom=[{"secretRef": {"name": "admin"}}]))),
        ("own-spec-parallelism", patch(own, spec(parallelism=7))),
        ("own-spec-json-patch", patch(own, [{"op": "replace", "path": "/spec/suspend",
                                             "value": True}], JSON_PATCH)),
        ("own-labels", patch(own, meta(labels={"evil": "yes"}))),
        ("own-labels-server-side-apply", patch(own + SSA, apply_label, APPLY)),
        ("own-finalizers", patch(own, wedge)),
        ("own-ownerReferences", patch(own, meta(ownerReferences=owner))),
        ("own-annotation-redrive", patch(own, annotate("extraction.dev/redrive", "evil"))),
        ("own-annotation-other", patch(own, annotate("example.com/note", "evil"))),
        ("own-breaker-oversized", patch(own, annotate(BREAKERS, "x" * 40000))),
        ("own-status", patch(own + "/status", {"status": {"phase": "Succeeded"}})),
        ("own-update", ("PUT", own, replaced)),
        ("own-delete", ("DELETE", own)),
        ("own-get", ("GET", own)),
        ("own-list", ("GET", RUNS)),
        ("own-watch", ("GET", RUNS + "?watch=true&timeoutSeconds=1")),
        # --- a run of the same ServiceAccount: nothing at all, not even a read
        ("sibling-get", ("GET", sib)),
        ("sibling-read-by-patch", patch(sib, {})),
        ("sibling-read-by-dry-run", patch(sib + "?dryRun=All", {})),
        ("sibling-open-circuit", patch(sib, forged_open)),
        ("sibling-close-circuit", patch(sib, annotate(BREAKERS, breaker_document("closed")))),
        ("sibling-spec-image", patch(sib, spec(image="evil:latest"))),
        ("sibling-finalizers", patch(sib, wedge)),
        ("sibling-labels-server-side-apply", patch(sib + SSA, apply_sibling, APPLY)),
        ("sibling-delete", ("DELETE", sib)),
        # --- a run of another ServiceAccount
        ("stranger-get", ("GET", other)),
        ("stranger-read-by-patch", patch(other, {})),
        ("stranger-open-circuit", patch(other, forged_open)),
        # --- around the run: new runs, RBAC, other identities, the run's Jobs and pods
        ("create-run", ("POST", RUNS, new_run)),
        ("create-role", ("POST", f"{rbac}/roles", role)),
        ("create-rolebinding", ("POST", f"{rbac}/rolebindings", binding)),
        ("mint-token", ("POST", f"{core}/serviceaccounts/extraction-stage/token", token)),
        ("impersonate-other-account", ("GET", other, None, "application/json", impersonate)),
        ("list-jobs", ("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")),
        ("list-pods", ("GET", f"{core}/pods")),
        ("list-events", ("GET", f"{core}/events")),
    ]  # fmt: skip


def report(case: str, status: int, message: str) -> None:
    print("ATTACK " + json.dumps({"case": case, "status": status, "message": message}), flush=True)


def main() -> int:
    sibling, stranger = sys.argv[1], sys.argv[2]
    own = f"{RUNS}/{OWN}"
    # The operator records this pod's Job in the run's status right after creating it; until it
    # has, even a read is refused (that race is what the SDK waits out, too).
    deadline = time.monotonic() + 60
    while True:
        status, message, own_object = request("PATCH", own, {}, MERGE)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    report("own-read-by-patch", status, message)
    written = request("PATCH", own, annotate(BREAKERS, breaker_document("closed")), MERGE)
    report("own-breaker-write", written[0], written[1])
    if status != 200:
        print("ATTACK DONE", flush=True)
        return 1
    for case, arguments in cases(sibling, stranger, own_object):
        status, message, _ = request(*arguments)
        report(case, status, message)
    print("ATTACK DONE", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
