"""Even a user with every right on runs cannot swap the identity or code of work in flight: the
CRD refuses changes to `serviceAccountName`, `image`, `env` and `envFrom` until the run finished
(api/immutability.py), on the real API server, with a message that says why and what to do."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from isolation_kit import Tenant, sleeper, unique

pytestmark = pytest.mark.timeout(240)

CHANGES = {
    "serviceAccountName": {"serviceAccountName": "other-stage"},
    "image": {"image": "evil:latest"},
    "env": {"env": [{"name": "PYTHONPATH", "value": "/evil"}]},
    "envFrom": {"envFrom": [{"secretRef": {"name": "admin-creds"}}]},
}


def _patch(tenant: Tenant, run: str, spec: dict[str, object]) -> tuple[int, str]:
    done = tenant.kube.run(
        "patch", "xrun", run, "-n", tenant.namespace, "--type=merge",
        "-p", json.dumps({"spec": spec}), check=False,
    )  # fmt: skip
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def in_flight(tenant: Tenant) -> Iterator[str]:
    run = tenant.create_run(unique("flight"), [sleeper()])
    try:
        tenant.wait_node(run, "hold", {"Running"})
        yield run
    finally:
        tenant.delete_run(run)


@pytest.mark.parametrize("field", list(CHANGES))
def test_an_identity_field_of_a_run_in_flight_is_refused_even_to_an_admin(
    tenant: Tenant, in_flight: str, field: str
) -> None:
    code, message = _patch(tenant, in_flight, CHANGES[field])
    assert code != 0
    assert f"spec.{field}: Forbidden: spec.{field} chooses the identity or code" in message
    assert "while the run is in flight (phase Running)" in message
    assert "once the run has Succeeded or Failed, or create a new ExtractionRun" in message


def test_other_spec_fields_of_a_run_in_flight_still_change(tenant: Tenant, in_flight: str) -> None:
    code, message = _patch(tenant, in_flight, {"parallelism": 2})
    assert code == 0, message


def test_a_finished_run_may_change_them_for_its_next_re_drive(tenant: Tenant) -> None:
    run = tenant.create_run(
        unique("done"), [{"name": "a", "command": [sys.executable, "-c", "print(1)"]}]
    )
    try:
        tenant.wait_phase(run, {"Succeeded"})
        for field, change in CHANGES.items():
            code, message = _patch(tenant, run, change)
            assert code == 0, (field, message)
    finally:
        tenant.delete_run(run)
