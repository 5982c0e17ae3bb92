"""The confinement's pieces agree with each other, checked without a cluster: the admission
policies name the operator's real identity and are enforced (Deny, fail closed), the stage SDK
knows the policy's words, the CRD's immutability rules decide as documented (cel-python; the
real tier checks the API server's own answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel

from extraction_operator.api.crd import generate_crd
from extraction_operator.api.immutability import IDENTITY_FIELDS

REPO = Path(__file__).resolve().parents[2]
ADMISSION = REPO / "manifests" / "admission"
ENV = celpy.Environment()


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


POLICIES = [d for p in sorted(ADMISSION.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in _documents(p)]  # fmt: skip


def test_every_policy_is_bound_to_deny_and_fails_closed() -> None:
    policies = {d["metadata"]["name"]: d for d in POLICIES if d["kind"].endswith("Policy")}
    bindings = [d for d in POLICIES if d["kind"].endswith("PolicyBinding")]
    assert set(policies) == {
        "extraction-stage-confinement",
        "extraction-operator-roles",
        "extraction-operator-rolebindings",
    }
    assert sorted(b["spec"]["policyName"] for b in bindings) == sorted(policies)
    for binding in bindings:
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert "paramRef" not in binding["spec"]
    for policy in policies.values():
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert all(v["reason"] == "Forbidden" for v in policy["spec"]["validations"])


def test_the_policies_name_the_operator_the_install_creates() -> None:
    account = yaml.safe_load((REPO / "manifests" / "serviceaccount.yaml").read_text())
    identity = (
        f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"
    )
    for policy in (d for d in POLICIES if d["kind"] == "ValidatingAdmissionPolicy"):
        conditions = " ".join(c["expression"] for c in policy["spec"]["matchConditions"])
        assert f"'{identity}'" in conditions, policy["metadata"]["name"]


def test_stage_confinement_covers_writes_of_the_run_and_its_status() -> None:
    (policy,) = [
        d
        for d in POLICIES
        if d["kind"] == "ValidatingAdmissionPolicy"
        and d["metadata"]["name"] == "extraction-stage-confinement"
    ]
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["extractionruns", "extractionruns/status"]
    assert set(rule["operations"]) == {"UPDATE", "DELETE"}  # CREATE: RBAC grants none


# ------------------------------------------------------------------------- CRD immutability

ROOT_RULES = generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
    "x-kubernetes-validations"
]


def _allowed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    verdicts = []
    for rule in ROOT_RULES:
        program = ENV.program(ENV.compile(rule["rule"]))
        verdicts.append(bool(program.evaluate({"self": json_to_cel(new),
                                               "oldSelf": json_to_cel(old)})))  # fmt: skip
    return all(verdicts)


def _run(phase: str | None, **spec: Any) -> dict[str, Any]:
    run: dict[str, Any] = {"spec": {"image": "a:1", "stages": [], **spec}}
    if phase is not None:
        run["status"] = {"phase": phase}
    return run


CHANGED = {
    "serviceAccountName": {"serviceAccountName": "other"},
    "image": {"image": "b:2"},
    "env": {"env": [{"name": "X", "value": "1"}]},
    "envFrom": {"envFrom": [{"secretRef": {"name": "s"}}]},
}


def test_one_rule_per_identity_field() -> None:
    assert [r["fieldPath"] for r in ROOT_RULES] == [f".spec.{f}" for f in IDENTITY_FIELDS]
    assert set(CHANGED) == set(IDENTITY_FIELDS)


@pytest.mark.parametrize("phase", [None, "Pending", "Running", "Suspended"])
@pytest.mark.parametrize("field", list(CHANGED))
def test_identity_fields_are_frozen_while_in_flight(phase: str | None, field: str) -> None:
    assert not _allowed(_run(phase), _run(phase, **CHANGED[field]))


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
@pytest.mark.parametrize("field", list(CHANGED))
def test_identity_fields_change_once_finished(phase: str, field: str) -> None:
    assert _allowed(_run(phase), _run(phase, **CHANGED[field]))


def test_other_fields_change_in_flight_and_unset_stays_unset() -> None:
    assert _allowed(_run("Running"), _run("Running", parallelism=9))
    assert not _allowed(_run("Running"), {"spec": {"stages": []}, "status": {"phase": "Running"}})
