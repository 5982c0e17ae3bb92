"""ExtractionRun health as kstatus and `kubectl wait` compute it, on the real objects.

kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus/status`) is what Flux's kustomize-controller runs for
`spec.wait: true` and `spec.healthChecks`, and what kpt and cli-utils' applier wait with. Here
it is the real library, through the project's small Go program
(`extraction_operator.controlplane.tools.kstatus`). `status.Compute` decides, first rule that
applies:

1. `metadata.deletionTimestamp` set: `Terminating`.
2. `status.observedGeneration` present and not `metadata.generation`: `InProgress` (only the
   status' own generation: kstatus ignores the conditions' `observedGeneration`).
3. A condition `Reconciling` `True`: `InProgress`; `Stalled` `True`: `Failed`.
4. No rule of its own for this kind, so a `Ready` condition: `True` is `Current`, `False` or
   `Unknown` is `InProgress`.
5. Nothing of the above: `Current` ("Resource is current").

kstatus has no `Suspended`: a suspended run (`Ready`, `Reconciling` and `Stalled` all `False`,
reason `Suspended`) falls through to rule 4 and is `InProgress`, with the run's message. That is
the honest answer for a run that has not finished and has not failed: a Kustomization that waits
for it keeps waiting (until its `timeout`), instead of reporting a run as done that is not.

Rule 5 would make a run the operator has not written a status for yet (just applied) `Current`,
so a Flux health check right after the apply could pass before the run has even started. The CRD
prevents that: its `status` schema defaults to `{observedGeneration: 0}`, which the API server
serves until the operator's first write, so rule 2 makes such a run `InProgress`
(`test_a_run_the_operator_has_not_seen_is_in_progress`). Under a CRD without that default (an
install from before it) the run has no status at all and is still `Current`: the
`no_status_without_default` case (see docs/gitops.md, "Flux and kstatus").

The real-cluster test at the end judges live runs with kstatus from `kubectl get -o json`, and
with `kubectl wait --for=condition=...` and `--for=jsonpath=...` as a script or CI would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from capture_testdata import (
    HEALTH_DIR,
    failed_run,
    invalid_run,
    running_run,
    succeeded_run,
)

from cluster_kit import InstalledOperator, Kubectl
from extraction_operator.controlplane.tools import kstatus

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
TESTDATA = HEALTH_DIR / "testdata"
CASES = sorted(path.stem for path in TESTDATA.glob("*.yaml"))

# kstatus' verdict on every captured run, and the rule of status.Compute that decides it:
# "generation" (status.observedGeneration is behind), "Reconciling" / "Stalled" (that condition is
# True), "Ready" (the Ready condition, for want of the other two), "default" (no conditions).
KSTATUS: dict[str, tuple[str, str]] = {
    "pending": ("InProgress", "Reconciling"),
    "running": ("InProgress", "Reconciling"),
    "running_stage_not_started": ("InProgress", "Reconciling"),
    "waiting": ("InProgress", "Reconciling"),
    "blocked": ("InProgress", "Reconciling"),
    "suspended": ("InProgress", "Ready"),  # kstatus has no Suspended: Ready False decides
    "succeeded": ("Current", "Ready"),
    "failed": ("Failed", "Stalled"),
    "invalid_spec": ("Failed", "Stalled"),
    "stale_generation": ("InProgress", "generation"),
    "no_status": ("InProgress", "generation"),  # the CRD's default status: generation 0
    "no_status_without_default": (
        "Current",
        "default",
    ),  # a CRD without it: a user expects InProgress
}

# What a user expects of each case (the list); kstatus differs only for a run served by a
# CRD without the status default.
USER_EXPECTS = {
    **dict.fromkeys(KSTATUS, "InProgress"),
    "succeeded": "Current",
    "failed": "Failed",
    "invalid_spec": "Failed",
}

# `kubectl wait --for=<key>` on a run in each state: True when the condition is met, False when
# kubectl times out. The states are the live runs of the real-tier test; "running" stands for
# every Pending and Running case (Reconciling True, Ready False).
WAIT_FOR = (
    "condition=Ready",
    "condition=Stalled",
    "condition=Reconciling=False",
    "jsonpath={.status.phase}=Succeeded",
)
KUBECTL_WAIT: dict[str, dict[str, bool]] = {
    "running": dict.fromkeys(WAIT_FOR, False),
    "suspended": {**dict.fromkeys(WAIT_FOR, False), "condition=Reconciling=False": True},
    "succeeded": {**dict.fromkeys(WAIT_FOR, True), "condition=Stalled": False},
    "failed": {
        **dict.fromkeys(WAIT_FOR, False),
        "condition=Stalled": True,
        "condition=Reconciling=False": True,
    },
    "invalid_spec": {
        **dict.fromkeys(WAIT_FOR, False),
        "condition=Stalled": True,
        "condition=Reconciling=False": True,
    },
}


class _StringTimestamps(yaml.SafeLoader):
    """YAML as the API server's JSON has it: timestamps stay strings."""


_StringTimestamps.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def captured(name: str) -> JSON:
    obj: JSON = yaml.load((TESTDATA / f"{name}.yaml").read_text(), Loader=_StringTimestamps)
    return obj


def condition(obj: JSON, kind: str) -> JSON:
    for item in obj.get("status", {}).get("conditions", []):
        if item.get("type") == kind:
            return dict(item)
    return {}


def judge(obj: JSON) -> JSON:
    [verdict] = kstatus([obj])
    return verdict


def expected_message(obj: JSON, rule: str) -> str:
    """The message kstatus gives for `rule`: the deciding condition's, or the library's own."""
    if rule == "generation":
        return (
            f"ExtractionRun generation is {obj['metadata']['generation']}, "
            f"but latest observed generation is {obj['status']['observedGeneration']}"
        )
    if rule == "default":
        return "Resource is current"
    if rule == "Ready" and condition(obj, "Ready").get("status") == "True":
        return "Resource is Ready"
    return str(condition(obj, rule)["message"])


@pytest.fixture(scope="module")
def verdicts() -> dict[str, JSON]:
    """Every captured run judged by one kstatus process, read as a stream of objects."""
    objects = [captured(name) for name in CASES]
    judged = kstatus(objects)
    assert len(judged) == len(objects), judged
    for obj, verdict in zip(objects, judged, strict=True):
        assert (verdict["kind"], verdict["namespace"], verdict["name"]) == (
            "ExtractionRun",
            obj["metadata"]["namespace"],
            obj["metadata"]["name"],
        )
    return dict(zip(CASES, judged, strict=True))


# ------------------------------------------------------------------------------ the testdata


def test_the_table_covers_every_captured_run() -> None:
    assert set(KSTATUS) == set(CASES), "a new testdata file needs its row here and in the docs"


@pytest.mark.parametrize("name", CASES)
def test_kstatus_verdict_of_every_captured_run(verdicts: dict[str, JSON], name: str) -> None:
    status, rule = KSTATUS[name]
    obj = captured(name)
    assert verdicts[name]["status"] == status
    assert verdicts[name]["message"] == expected_message(obj, rule)
    if rule in ("Reconciling", "Stalled", "Ready") and status != "Current":
        # The run's own one-line summary, as in `kubectl get xrun -o wide` and Argo CD.
        assert verdicts[name]["message"] == obj["status"]["message"]


def test_kstatus_agrees_with_the_user_but_under_a_crd_without_the_status_default(
    verdicts: dict[str, JSON],
) -> None:
    disagree = {
        name: (USER_EXPECTS[name], verdict["status"])
        for name, verdict in verdicts.items()
        if verdict["status"] != USER_EXPECTS[name]
    }
    assert disagree == {"no_status_without_default": ("InProgress", "Current")}


def test_a_run_the_operator_has_not_seen_is_in_progress(verdicts: dict[str, JSON]) -> None:
    """The API server serves a run the operator has not written a status for with the CRD's
    default status (structural defaulting on read, also under the status subresource), and rule
    2 makes it InProgress until the operator writes generation 1."""
    obj = captured("no_status")
    assert obj["status"] == {"observedGeneration": 0}
    assert verdicts["no_status"] == {
        "kind": "ExtractionRun",
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"]["name"],
        "status": "InProgress",
        "message": "ExtractionRun generation is 1, but latest observed generation is 0",
    }


def test_it_is_the_crds_status_default_that_makes_it_in_progress() -> None:
    """The CRD install defaults `status` to `{observedGeneration: 0}`; without it (or with an
    empty status) kstatus is back at rule 5, Current."""
    crd = yaml.safe_load((REPO / "crds" / "extractionruns.yaml").read_text())
    [version] = crd["spec"]["versions"]
    assert version["subresources"]["status"] == {}
    status_schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status_schema["default"] == {"observedGeneration": 0}
    assert status_schema["properties"]["observedGeneration"]["type"] == "integer"
    obj = captured("no_status")
    for without in ({}, None):
        if without is None:
            del obj["status"]
        else:
            obj["status"] = without  # an empty status is no better than none
        assert judge(obj)["status"] == "Current"
        assert judge(obj)["message"] == "Resource is current"


def test_suspended_is_in_progress_because_ready_is_false() -> None:
    """kstatus has no Suspended. With Reconciling and Stalled False only the Ready condition is
    left to decide: False, so InProgress, with the run's "suspended; ..." message. Without a
    Ready condition the same run would be Current, as if it had finished."""
    obj = captured("suspended")
    assert obj["status"]["phase"] == "Suspended"
    assert {condition(obj, kind)["reason"] for kind in ("Ready", "Reconciling", "Stalled")} == {
        "Suspended"
    }
    verdict = judge(obj)
    assert verdict["status"] == "InProgress"
    assert verdict["message"].startswith("suspended; ")
    assert verdict["message"] == condition(obj, "Ready")["message"] == obj["status"]["message"]
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
    assert judge(obj) == {**verdict, "status": "Current", "message": "Resource is current"}


@pytest.mark.parametrize("name", ["succeeded", "failed", "suspended", "invalid_spec"])
def test_a_stale_status_is_in_progress_whatever_it_says(name: str) -> None:
    obj = captured(name)
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    assert judge(obj)["status"] == "InProgress"
    assert judge(obj)["message"] == expected_message(obj, "generation")


def test_kstatus_reads_the_generation_of_the_status_only() -> None:
    """kstatus never looks at a condition's observedGeneration, so the operator must write the
    conditions in the same update as `status.observedGeneration`; every captured run does."""
    for name in CASES:
        status = captured(name).get("status", {})
        if "conditions" not in status:  # not written by the operator yet
            continue
        generations = {c["type"]: c["observedGeneration"] for c in status["conditions"]}
        assert set(generations.values()) == {status["observedGeneration"]}, (name, generations)
    obj = captured("succeeded")
    for item in obj["status"]["conditions"]:
        item["observedGeneration"] = 0  # conditions about an older spec: kstatus cannot tell
    assert judge(obj)["status"] == "Current"


@pytest.mark.parametrize("name", ["running", "succeeded", "failed", "suspended"])
def test_a_run_being_deleted_is_terminating(name: str) -> None:
    obj = captured(name)
    obj["metadata"]["deletionTimestamp"] = "2026-11-01T00:00:00Z"
    obj["metadata"]["finalizers"] = ["example.com/hold"]  # any finalizer keeps it a while
    assert judge(obj)["status"] == "Terminating"
    assert judge(obj)["message"] == "Resource scheduled for deletion"


# ------------------------------------------------------------------------------------ the docs


def _section(title: str) -> list[str]:
    text = (REPO / "docs" / "gitops.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/gitops.md has no section {title!r}"
    return match.group(1).splitlines()


def _rows(title: str) -> dict[str, list[str]]:
    """The table rows of a section, keyed by their first cell."""
    rows = {}
    for line in _section(title):
        if line.startswith("| ") and not line.startswith("|--"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


DOC_ROWS = {
    "No status yet (just applied)": ["no_status"],
    "No status yet, CRD without the status default": ["no_status_without_default"],
    "Spec changed, not observed yet": ["stale_generation"],
    "Pending": ["pending"],
    "Running": ["running", "running_stage_not_started", "waiting", "blocked"],
    "Suspended": ["suspended"],
    "Succeeded": ["succeeded"],
    "Failed": ["failed"],
    "Invalid spec": ["invalid_spec"],
}


def test_the_flux_table_of_the_docs_is_this_one() -> None:
    rows = _rows("Flux and kstatus")
    assert set(DOC_ROWS) <= set(rows), sorted(rows)
    assert {name for names in DOC_ROWS.values() for name in names} == set(CASES)
    for label, names in DOC_ROWS.items():
        documented = rows[label][1]  # Run | What the operator wrote | kstatus | ...
        for name in names:
            assert documented == f"`{KSTATUS[name][0]}`", (label, name, documented)


def test_the_kubectl_wait_table_of_the_docs_is_this_one() -> None:
    rows = _rows("kubectl wait")
    header = rows.pop("Run")
    assert header == [f"`--for={key}`" for key in WAIT_FOR]
    labels = {
        "Pending or Running": "running",
        "Suspended": "suspended",
        "Succeeded": "succeeded",
        "Failed": "failed",
        "Invalid spec": "invalid_spec",
    }
    assert set(labels) <= set(rows), sorted(rows)
    for label, state in labels.items():
        expected = ["met" if KUBECTL_WAIT[state][key] else "times out" for key in WAIT_FOR]
        assert rows[label] == expected, label


# ------------------------------------------------------------------------------ real cluster

NAMESPACE = "default"
SETTLE = 180  # seconds for a live run to reach its state on a loaded two-core machine
NOT_MET = 3  # seconds kubectl waits for a condition that must not be met


def _wait(kube: Kubectl, name: str, what: str, timeout: int) -> subprocess.CompletedProcess[str]:
    return kube.run("wait", f"extractionrun/{name}", "-n", NAMESPACE, f"--for={what}",
                    f"--timeout={timeout}s", check=False, timeout=timeout + 60)  # fmt: skip


def _assert_met(done: subprocess.CompletedProcess[str], name: str, what: str) -> None:
    assert done.returncode == 0, (what, done.stderr)
    assert done.stdout == f"extractionrun.extraction.dev/{name} condition met\n", what


def _assert_timed_out(done: subprocess.CompletedProcess[str], name: str, what: str) -> None:
    assert done.returncode == 1, (what, done.stdout, done.stderr)
    assert done.stdout == "", what
    assert done.stderr == f"error: timed out waiting for the condition on extractionruns/{name}\n"


@pytest.mark.timeout(600)
def test_live_runs_judged_by_kstatus_and_kubectl_wait(
    kube: Kubectl, installed_operator: InstalledOperator
) -> None:
    """Live runs of the operator installed from manifests/, read with `kubectl get -o json` (what
    Flux's status poller reads) and judged by kstatus, and waited for with `kubectl wait`."""
    suffix = uuid.uuid4().hex[:6]
    names = {state: f"kstatus-{state.replace('_', '-')}-{suffix}" for state in KUBECTL_WAIT}
    suspended = running_run(names["suspended"])
    suspended["spec"]["suspend"] = True  # committed suspended: nothing is launched
    kube.apply([running_run(names["running"]), suspended, succeeded_run(names["succeeded"]),
                failed_run(names["failed"]), invalid_run(names["invalid_spec"])])  # fmt: skip
    try:
        # Right after the apply, as Flux's first health poll sees it: whether or not the operator
        # has written a status yet, the run is InProgress. Before its first write the API server
        # serves the CRD's default status, generation 0.
        first = kube.json("get", "extractionrun", names["running"], "-n", NAMESPACE)
        assert first["status"]["observedGeneration"] in (0, 1), first["status"]
        verdict = judge(first)
        assert verdict["status"] == "InProgress", verdict
        if first["status"]["observedGeneration"] == 0:
            assert first["status"] == {"observedGeneration": 0}
            assert verdict["message"] == expected_message(first, "generation")
        else:
            assert verdict["message"] == first["status"]["message"]

        # Each run reaches its state, waited for with kubectl as a script would.
        settle = {
            "running": "jsonpath={.status.nodes.extract.phase}=Running",
            "suspended": "jsonpath={.status.phase}=Suspended",
            "succeeded": "condition=Ready",
            "failed": "condition=Stalled",
            "invalid_spec": "condition=Stalled",
        }
        for state, what in settle.items():
            _assert_met(_wait(kube, names[state], what, SETTLE), names[state], what)
        created = _wait(kube, names["succeeded"], "create", SETTLE)
        _assert_met(created, names["succeeded"], "create")

        # kstatus on all of them at once, read as a List as `kubectl get` returns it.
        listed = kube.json("get", "extractionrun", *names.values(), "-n", NAMESPACE)
        assert listed["kind"] == "List"
        live = {obj["metadata"]["name"]: obj for obj in listed["items"]}
        judged = {verdict["name"]: verdict for verdict in kstatus([listed])}
        for state, name in names.items():
            status, rule = KSTATUS[state]
            assert judged[name]["status"] == status, (state, judged[name])
            assert judged[name]["message"] == expected_message(live[name], rule), state
        assert judged[names["running"]]["message"] == "1/2 done; running: extract"
        assert judged[names["suspended"]]["message"].startswith("suspended; ")
        assert "provider returned HTTP 503" in judged[names["failed"]]["message"]
        assert judged[names["invalid_spec"]]["message"].startswith("invalid spec: ")

        # Every `kubectl wait` of the docs' table on every state.
        for state, table in KUBECTL_WAIT.items():
            name = names[state]
            for what, met in table.items():
                if met:
                    _assert_met(_wait(kube, name, what, SETTLE), name, what)
                else:
                    _assert_timed_out(_wait(kube, name, what, NOT_MET), name, what)

        # The runs are still where they were: the verdicts above were about settled states.
        again = kube.json("get", "extractionrun", *names.values(), "-n", NAMESPACE)
        assert [v["status"] for v in kstatus([again])] == [
            judged[obj["metadata"]["name"]]["status"] for obj in again["items"]
        ]
    finally:
        for name in names.values():
            kube.run("delete", "extractionrun", name, "-n", NAMESPACE, "--wait=false", check=False)
