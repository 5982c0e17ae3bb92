"""The operator's per-run grants (controller/stagerbac.py) against a scripted API: what it creates,
how it treats what it finds, and that nothing it meets makes a reconcile fail. The real tier runs
the same code against RBAC and the admission policies (test_isolation_attacks.py,
test_isolation_grants.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from extraction_operator.breaker.testing import ManualClock
from extraction_operator.controller.rest import ApiError
from extraction_operator.controller.stagerbac import (
    StageGrants,
    binding_manifest,
    grant_name,
    role_manifest,
)

JSON = dict[str, Any]
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces"


class FakeRest:
    """Roles and RoleBindings by path, with the API server's answers that matter here."""

    def __init__(self) -> None:
        self.objects: dict[str, JSON] = {}
        self.calls: list[tuple[str, str]] = []
        self.refuse: int | None = None  # answer every request with this status

    async def request(self, method: str, path: str, *, body: Any = None, **kwargs: Any) -> JSON:
        self.calls.append((method, path))
        if self.refuse is not None:
            raise ApiError(self.refuse, "Refused", f"HTTP {self.refuse}")
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", "exists")
            self.objects[key] = copy.deepcopy(body)
            return body
        if key := path if path in self.objects else "":
            if method == "GET":
                return copy.deepcopy(self.objects[key])
            if method == "PATCH":
                self.objects[key].update(copy.deepcopy(body))
                return self.objects[key]
        raise ApiError(404, "NotFound", "not found")


class FakeApi:
    def __init__(self) -> None:
        self.rest = FakeRest()


async def test_a_run_gets_a_role_for_itself_alone_and_a_binding_for_its_account() -> None:
    api = FakeApi()
    grants = StageGrants(api)
    verdict = await grants.ensure("team", "corpus", "uid-1", "extraction-stage")
    assert verdict is not None
    assert verdict.allowed
    assert "Role extraction-stage-corpus" in verdict.message
    role = api.rest.objects[f"{RBAC}/team/roles/extraction-stage-corpus"]
    assert role == role_manifest("team", "corpus", "uid-1")
    assert role["rules"] == [
        {
            "apiGroups": ["extraction.dev"],
            "resources": ["extractionruns"],
            "resourceNames": ["corpus"],
            "verbs": ["patch"],
        }
    ]
    (owner,) = role["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "extraction.dev/v1alpha1",
        "kind": "ExtractionRun",
        "name": "corpus",
        "uid": "uid-1",
        "controller": True,
    }
    binding = api.rest.objects[f"{RBAC}/team/rolebindings/extraction-stage-corpus"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "extraction-stage-corpus",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "extraction-stage", "namespace": "team"}
    ]
    calls = len(api.rest.calls)
    assert await grants.ensure("team", "corpus", "uid-1", "extraction-stage") == verdict
    assert len(api.rest.calls) == calls, "remembered: no request on the next pass"


async def test_after_a_restart_its_own_grant_is_found_and_kept() -> None:
    api = FakeApi()
    await StageGrants(api).ensure("team", "corpus", "uid-1", "extraction-stage")
    restarted = StageGrants(api)
    verdict = await restarted.ensure("team", "corpus", "uid-1", "extraction-stage")
    assert verdict is not None
    assert verdict.allowed
    assert [m for m, _ in api.rest.calls[-4:]] == ["POST", "GET", "POST", "GET"]


async def test_a_new_account_of_a_finished_run_that_runs_again_is_rebound() -> None:
    api = FakeApi()
    await StageGrants(api).ensure("team", "corpus", "uid-1", "extraction-stage")
    verdict = await StageGrants(api).ensure("team", "corpus", "uid-1", "other-stage")
    assert verdict is not None
    binding = api.rest.objects[f"{RBAC}/team/rolebindings/extraction-stage-corpus"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "other-stage", "namespace": "team"}
    ]


async def test_a_grant_of_a_deleted_run_of_the_same_name_is_left_to_garbage_collection() -> None:
    api = FakeApi()
    await StageGrants(api).ensure("team", "corpus", "uid-old", "extraction-stage")
    grants = StageGrants(api)
    assert await grants.ensure("team", "corpus", "uid-new", "extraction-stage") is None
    calls = len(api.rest.calls)
    assert await grants.ensure("team", "corpus", "uid-new", "extraction-stage") is None
    assert len(api.rest.calls) == calls, "not asked again at once"
    role = api.rest.objects[f"{RBAC}/team/roles/extraction-stage-corpus"]
    assert role["metadata"]["ownerReferences"][0]["uid"] == "uid-old"


async def test_no_rbac_api_or_no_right_to_grant_is_no_verdict_and_no_crash() -> None:
    api = FakeApi()
    api.rest.refuse = 404
    grants = StageGrants(api)
    assert await grants.ensure("team", "a", "u", "s") is None
    assert await grants.ensure("other", "b", "u", "s") is None
    assert len(api.rest.calls) == 1, "an API server without RBAC is not asked again soon"
    api = FakeApi()
    api.rest.refuse = 403
    grants = StageGrants(api)
    assert await grants.ensure("team", "a", "u", "s") is None
    assert await grants.ensure("team", "b", "u", "s") is None
    assert len(api.rest.calls) == 1, "a namespace that refused is not asked again soon"
    api.rest.refuse = None
    verdict = await grants.ensure("other", "c", "u", "s")
    assert verdict is not None, "another namespace may allow it"


async def test_an_api_without_a_rest_client_grants_nothing() -> None:
    """The reconciler's test doubles (and so the SubjectAccessReview path behind them)."""
    assert await StageGrants(object()).ensure("team", "a", "u", "s") is None


@pytest.mark.parametrize("status", [500, 422])
async def test_errors_are_retried_after_a_while_not_on_every_pass(status: int) -> None:
    """An outage passes; an account name the API server refuses (422) waits for a fix."""
    api = FakeApi()
    api.rest.refuse = status
    clock = ManualClock(0.0)
    grants = StageGrants(api, clock=clock)
    assert await grants.ensure("team", "a", "u", "s") is None
    api.rest.refuse = None
    assert await grants.ensure("team", "a", "u", "s") is None
    clock.advance(31)
    assert await grants.ensure("team", "a", "u", "s") is not None


def test_names_stay_valid_for_the_longest_run_names() -> None:
    name = grant_name("r" * 253)
    assert len(name) <= 253
    assert name.startswith("extraction-stage-")
    assert name != grant_name("r" * 252)
    manifest = binding_manifest("team", "r" * 253, "u", "s")
    assert manifest["roleRef"]["name"] == manifest["metadata"]["name"] == name
