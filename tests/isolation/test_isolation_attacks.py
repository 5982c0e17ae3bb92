"""Issue 12 on the real tier: a stage pod's identity may change exactly one thing, the breaker
annotation of its own run; everything else it tries is refused by the API server, with a message
that says why.

One compromised stage (`stage_attacks.py`) runs as a real stage pod of run `attacker`, with the
pod's own bound token of the ServiceAccount `extraction-stage`, which run `sibling` (in flight)
shares; run `stranger` (in flight) uses `other-stage`. Each attempt is its own test case below,
with the status and the words the API server must answer with: RBAC (the per-run Role grants
`patch` on the own run only, nothing else), the CRD's immutability rules (422), and the
stage-confinement admission policy (403). Set EXTRACTION_ISOLATION_REPORT=FILE to get every
answer as JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest
from isolation_kit import OTHER_ACCOUNT, Tenant, script, sleeper, unique

from extraction_operator.breaker.api import NOT_ENROLLED_MARKER

pytestmark = pytest.mark.timeout(300)

POLICY = "ValidatingAdmissionPolicy 'extraction-stage-confinement'"
OWN_ONLY = "it may change only its extraction.dev/circuit-breakers annotation"
SIBLING_DOC = (
    '{"v":1,"circuits":{"llm":{"state":"open","failures":3,"successes":0,'
    '"openedAt":"2026-01-01T00:00:00.000Z","generation":1,"opens":1}}}'
)
STRANGER_DOC = '{"v":1,"circuits":{"llm":{"state":"closed","failures":2,"generation":0}}}'


def rbac(verb: str, resource: str, group: str = "extraction.dev") -> str:
    return f'cannot {verb} resource "{resource}" in API group "{group}"'


def immutable(field: str) -> str:
    return f"spec.{field} chooses the identity or code of the stage pods and cannot change"


# case -> (HTTP status, words the answer must contain; {ns}, {sibling} filled in)
DENIED: dict[str, tuple[int, str]] = {
    "own-spec-serviceAccountName": (422, immutable("serviceAccountName")),
    "own-spec-image": (422, immutable("image")),
    "own-spec-env": (422, immutable("env")),
    "own-spec-envFrom": (422, immutable("envFrom")),
    "own-spec-parallelism": (403, "a stage pod may not change the spec of ExtractionRun"),
    "own-spec-json-patch": (403, "a stage pod may not change the spec of ExtractionRun"),
    "own-labels": (403, "a stage pod may not change the labels of ExtractionRun"),
    "own-labels-server-side-apply": (403, "a stage pod may not change the labels"),
    "own-finalizers": (403, "a stage pod may not change the finalizers of ExtractionRun"),
    "own-ownerReferences": (403, "a stage pod may not change the ownerReferences of"),
    "own-annotation-redrive": (403, "may not change annotations of ExtractionRun"),
    "own-annotation-other": (403, "may not change annotations of ExtractionRun"),
    "own-breaker-oversized": (403, "may hold at most 32768 characters"),
    "own-status": (403, rbac("patch", "extractionruns/status")),
    "own-update": (403, rbac("update", "extractionruns")),
    "own-delete": (403, rbac("delete", "extractionruns")),
    "own-get": (403, rbac("get", "extractionruns")),
    "own-list": (403, rbac("list", "extractionruns")),
    "own-watch": (403, rbac("watch", "extractionruns")),
    "sibling-get": (403, rbac("get", "extractionruns")),
    "sibling-read-by-patch": (403, f"{NOT_ENROLLED_MARKER} {{ns}}/{{sibling}}"),
    "sibling-read-by-dry-run": (403, f"{NOT_ENROLLED_MARKER} {{ns}}/{{sibling}}"),
    "sibling-open-circuit": (403, f"{NOT_ENROLLED_MARKER} {{ns}}/{{sibling}}"),
    "sibling-close-circuit": (403, f"{NOT_ENROLLED_MARKER} {{ns}}/{{sibling}}"),
    "sibling-spec-image": (422, immutable("image")),
    "sibling-finalizers": (403, f"{NOT_ENROLLED_MARKER} {{ns}}/{{sibling}}"),
    "sibling-labels-server-side-apply": (403, f"{NOT_ENROLLED_MARKER} {{ns}}/{{sibling}}"),
    "sibling-delete": (403, rbac("delete", "extractionruns")),
    "stranger-get": (403, rbac("get", "extractionruns")),
    "stranger-read-by-patch": (403, rbac("patch", "extractionruns")),
    "stranger-open-circuit": (403, rbac("patch", "extractionruns")),
    "create-run": (403, rbac("create", "extractionruns")),
    "create-role": (403, rbac("create", "roles", "rbac.authorization.k8s.io")),
    "create-rolebinding": (403, rbac("create", "rolebindings", "rbac.authorization.k8s.io")),
    "mint-token": (403, 'cannot create resource "serviceaccounts/token"'),
    "impersonate-other-account": (403, "cannot impersonate"),
    "list-jobs": (403, rbac("list", "jobs", "batch")),
    "list-pods": (403, 'cannot list resource "pods"'),
    "list-events": (403, 'cannot list resource "events"'),
}
ALLOWED = ("own-read-by-patch", "own-breaker-write")


@dataclass
class Attack:
    tenant: Tenant
    attacker: str
    sibling: str
    stranger: str
    before: dict[str, dict[str, Any]]
    answers: dict[str, dict[str, Any]]


def _guarded(obj: dict[str, Any]) -> dict[str, Any]:
    """What no stage may change: spec and metadata but the breaker annotation and bookkeeping."""
    meta = obj["metadata"]
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in ("extraction.dev/circuit-breakers",) and not k.startswith("kopf.")
    }
    return {
        "spec": obj["spec"],
        "labels": meta.get("labels"),
        "finalizers": meta.get("finalizers"),
        "ownerReferences": meta.get("ownerReferences"),
        "annotations": annotations,
    }


@pytest.fixture(scope="module")
def attack(tenant: Tenant) -> Any:
    sibling = tenant.create_run(unique("sibling"), [sleeper()])
    stranger = tenant.create_run(unique("stranger"), [sleeper()], account=OTHER_ACCOUNT)
    attacker = ""
    try:
        for run in (sibling, stranger):
            tenant.wait_node(run, "hold", {"Running"})
        tenant.set_annotation(sibling, SIBLING_DOC)
        tenant.set_annotation(stranger, STRANGER_DOC)
        before = {run: tenant.get(run) for run in (sibling, stranger)}
        attacker = tenant.create_run(
            unique("attacker"),
            [
                {
                    "name": "attack",
                    "command": script("stage_attacks.py", sibling, stranger),
                    "circuits": ["llm"],
                }
            ],
        )
        before[attacker] = tenant.get(attacker)  # its pod takes seconds to start, and to enrol
        node = tenant.wait_node(attacker, "attack", {"Succeeded", "Failed"}, timeout=180)
        records = tenant.records(node["jobName"], "ATTACK")
        answers = {record["case"]: record for record in records}
        report = os.environ.get("EXTRACTION_ISOLATION_REPORT")
        if report:
            with open(report, "w") as handle:
                json.dump(records, handle, indent=1)
        yield Attack(tenant, attacker, sibling, stranger, before, answers)
    finally:
        for run in (attacker, sibling, stranger):
            if run:
                tenant.delete_run(run)


def test_every_listed_attempt_was_made(attack: Attack) -> None:
    assert set(attack.answers) == {*ALLOWED, *DENIED}


@pytest.mark.parametrize("case", ALLOWED)
def test_a_stage_pod_may_read_and_write_its_own_runs_breaker_annotation(
    attack: Attack, case: str
) -> None:
    assert attack.answers[case]["status"] == 200, attack.answers[case]


@pytest.mark.parametrize("case", list(DENIED))
def test_the_api_server_refuses_and_says_why(attack: Attack, case: str) -> None:
    status, words = DENIED[case]
    words = words.format(ns=attack.tenant.namespace, sibling=attack.sibling)
    answer = attack.answers[case]
    assert answer["status"] == status, answer
    assert words in answer["message"], answer


def test_the_policy_names_itself_and_the_one_thing_allowed(attack: Attack) -> None:
    answer = attack.answers["own-finalizers"]["message"]
    assert POLICY in answer
    assert OWN_ONLY in answer


def test_no_run_changed_but_the_attackers_breaker_annotation(attack: Attack) -> None:
    tenant = attack.tenant
    for run in (attack.sibling, attack.stranger, attack.attacker):
        assert _guarded(tenant.get(run)) == _guarded(attack.before[run]), run
    assert tenant.annotation(attack.sibling) == SIBLING_DOC
    assert tenant.annotation(attack.stranger) == STRANGER_DOC
    own = json.loads(tenant.annotation(attack.attacker) or "{}")
    assert own["circuits"]["llm"]["generation"] == 9  # what the stage wrote, its one right
    names = tenant.kube.run("get", "xrun,role,rolebinding", "-n", tenant.namespace, "-o", "name")
    assert "forged-run" not in names.stdout
    assert "stage-escalation" not in names.stdout


def test_the_operator_granted_patch_on_each_run_alone(attack: Attack) -> None:
    tenant = attack.tenant
    for run, account in (
        (attack.attacker, "extraction-stage"),
        (attack.sibling, "extraction-stage"),
        (attack.stranger, OTHER_ACCOUNT),
    ):
        role = tenant.kube.json("get", "role", f"extraction-stage-{run}", "-n", tenant.namespace)
        assert role["rules"] == [
            {
                "apiGroups": ["extraction.dev"],
                "resources": ["extractionruns"],
                "resourceNames": [run],
                "verbs": ["patch"],
            }
        ]
        binding = tenant.kube.json(
            "get", "rolebinding", f"extraction-stage-{run}", "-n", tenant.namespace
        )
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": tenant.namespace}
        ]
        (owner,) = role["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("ExtractionRun", run)
