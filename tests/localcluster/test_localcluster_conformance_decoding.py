"""Conformance of how requests are read: query parameters, bodies and timestamps, with the exact
`Status` a real API server answers a request it cannot decode with.

Like the rest of the conformance suite these run on both backends (see conftest) and must pass
unchanged on both. The messages are Go's (`strconv.ParseInt`, `time.Parse`, `encoding/json`), so
the emulator's are compared in full, not just the status code: a client that logs or matches on
them sees the same text in tests as in production.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

GROUP, VERSION, PLURAL, KIND = "conformance.extraction.dev", "v1", "gizmos", "Gizmo"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
MICRO = "2006-01-02T15:04:05.000000Z07:00"
SECONDS = "2006-01-02T15:04:05Z07:00"

Body = Callable[..., dict[str, Any]]


def bad_request(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


def cannot_parse(value: str, layout: str, at: str, element: str) -> str:
    return f'parsing time "{value}" as "{layout}": cannot parse "{at}" as "{element}"'


# ------------------------------------------------------------------------------ query parameters


@pytest.mark.parametrize(
    ("method", "sub", "query", "value", "why"),
    [
        ("GET", "", [("timeoutSeconds", "270.0")], "270.0", "invalid syntax"),
        ("GET", "", [("watch", "true"), ("timeoutSeconds", "270.0")], "270.0", "invalid syntax"),
        ("GET", "", [("timeoutSeconds", "")], "", "invalid syntax"),
        ("GET", "", [("limit", "2.5")], "2.5", "invalid syntax"),
        (
            "GET",
            "",
            [("limit", "99999999999999999999")],
            "99999999999999999999",
            "value out of range",
        ),
        ("DELETE", "", [("timeoutSeconds", "1.5")], "1.5", "invalid syntax"),
        ("DELETE", "/any", [("gracePeriodSeconds", "1.5")], "1.5", "invalid syntax"),
    ],
    ids=["list", "watch", "empty", "limit", "out-of-range", "deletecollection", "delete"],
)
def test_integer_query_parameters_are_parsed_as_go_int64(
    cluster: Any, namespace: str, method: str, sub: str, query: Any, value: str, why: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps{sub}"
    status, error, _ = cluster.request(method, path, query=query)
    assert status == 400
    assert error == bad_request(f'strconv.ParseInt: parsing "{value}": {why}')


def test_watch_is_true_for_any_value_but_false_and_0(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "seen"}})
    for value in ("false", "FALSE", "0"):
        _, listed, _ = cluster.request("GET", path, query=[("watch", value)])
        assert listed["kind"] == "ConfigMapList", value
    status, stream, _ = cluster.request(
        "GET", path, query=[("watch", "yes"), ("timeoutSeconds", "1")]
    )
    assert status == 200
    events = [json.loads(line) for line in stream.splitlines() if line.strip()]
    assert "seen" in [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]


def test_watch_timeout_of_zero_means_the_servers_own_limit(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = cluster.core.list_namespaced_config_map(namespace).metadata.resource_version
    collected: list[dict[str, Any]] = []
    query = [
        ("resourceVersion", rv),
        ("timeoutSeconds", "0"),
        ("fieldSelector", "metadata.name=late"),
    ]
    thread = threading.Thread(
        target=lambda: collected.extend(cluster.watch(path, query, stop_after=1, timeout=10))
    )
    thread.start()
    time.sleep(0.5)  # a stream that ended at once would miss what comes now
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "late"}})
    thread.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in collected] == [("ADDED", "late")]


def test_delete_options_come_from_the_body_when_there_is_one(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/doomed"
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "doomed"}})
    # The query is not even parsed when a body is sent: its bad value goes unnoticed.
    status, _, _ = cluster.request("DELETE", path, {}, query=[("gracePeriodSeconds", "1.5")])
    assert status == 200
    assert cluster.request("GET", path)[0] == 404


def test_delete_answers_with_status_or_with_the_object_by_kind(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    cluster.core.create_namespaced_config_map(namespace, {"metadata": {"name": "gone"}})
    status, answer, _ = cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/gone")
    assert status == 200
    assert (answer["kind"], answer["status"]) == ("Status", "Success")
    assert answer["details"]["name"] == "gone"
    assert answer["details"]["kind"] == "configmaps"
    assert "group" not in answer["details"]
    created = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, gizmo_body("gone")
    )
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/gone"
    _, answer, _ = cluster.request("DELETE", path)
    assert answer["details"] == {
        "name": "gone",
        "group": GROUP,
        "kind": PLURAL,
        "uid": created["metadata"]["uid"],
    }
    # A ServiceAccount's registry answers with the deleted object; so does any held deletion.
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": "gone"}})
    _, answer, _ = cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/serviceaccounts/gone")
    assert answer["kind"] == "ServiceAccount"
    held = {"metadata": {"name": "held", "finalizers": ["conformance.extraction.dev/hold"]}}
    cluster.core.create_namespaced_config_map(namespace, held)
    path = f"/api/v1/namespaces/{namespace}/configmaps/held"
    _, answer, _ = cluster.request("DELETE", path)
    assert answer["kind"] == "ConfigMap"
    assert answer["metadata"]["deletionTimestamp"]
    cluster.request("PATCH", path, {"metadata": {"finalizers": None}}, content_type=MERGE)


# ------------------------------------------------------------------------------ bodies


def test_custom_resource_without_kind_is_400(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    body = gizmo_body("kindless")
    del body["kind"]
    raw = json.dumps(body)  # what the client sends, and what the server quotes back
    expected = bad_request(
        f"the object provided is unrecognized (must be of type {KIND}): "
        f"Object 'Kind' is missing in '{raw}' ({raw[:30]} ...)"
    )
    status, error, _ = cluster.request("POST", path, body)
    assert (status, error) == (400, expected)
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, gizmo_body("kindless")
    )
    status, error, _ = cluster.request("PUT", f"{path}/kindless", body)
    assert (status, error) == (400, expected)


@pytest.mark.parametrize("api_version", [None, "other.example.com/v1"])
def test_custom_resource_of_another_api_version_is_400(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body, api_version: str | None
) -> None:
    body = gizmo_body("versionless")
    body.pop("apiVersion")
    if api_version:
        body["apiVersion"] = api_version
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    status, error, _ = cluster.request("POST", path, body)
    assert (status, error) == (
        400,
        bad_request(
            f"the API version in the data ({api_version or ''}) does not match the expected "
            f"API version ({GROUP}/{VERSION})"
        ),
    )


def test_custom_resource_of_another_kind_is_422(
    cluster: Any, crd: Any, namespace: str, gizmo_body: Body
) -> None:
    body = gizmo_body("other")
    body["kind"] = "Other"
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    status, error, _ = cluster.request("POST", path, body)
    assert status == 422
    assert (
        error["message"]
        == f'Other.{GROUP} "other" is invalid: kind: Invalid value: "Other": must be {KIND}'
    )
    assert error["details"] == {
        "name": "other",
        "group": GROUP,
        "kind": "Other",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": f'Invalid value: "Other": must be {KIND}',
                "field": "kind",
            }
        ],
    }


@pytest.mark.parametrize("plural", ["configmaps", PLURAL])
def test_a_body_that_is_not_an_object_is_400(
    cluster: Any, crd: Any, namespace: str, plural: str
) -> None:
    group = f"/apis/{GROUP}/{VERSION}" if plural == PLURAL else "/api/v1"
    kind = KIND if plural == PLURAL else "ConfigMap"
    path = f"{group}/namespaces/{namespace}/{plural}"
    struct = (
        r'struct { APIVersion string "json:\"apiVersion,omitempty\""; '
        r'Kind string "json:\"kind,omitempty\"" }'
    )
    status, error, _ = cluster.request("POST", path, [1])
    assert (status, error) == (
        400,
        bad_request(
            f"the object provided is unrecognized (must be of type {kind}): couldn't get "
            f"version/kind; json parse error: json: cannot unmarshal array into Go value of type "
            f"{struct} (5b315d)"
        ),
    )


def test_an_empty_body_is_400(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    status, error, _ = cluster.request("POST", path)
    assert (status, error) == (
        400,
        bad_request(
            "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
            "version/kind; json parse error: unexpected end of JSON input (<empty>)"
        ),
    )


def test_built_in_body_of_another_kind_or_version_is_400(cluster: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
    status, error, _ = cluster.request("POST", path, secret)
    assert (status, error) == (
        400,
        bad_request(
            'Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to '
            "(core.ConfigMap): unknown conversion"
        ),
    )
    later = {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}
    status, error, _ = cluster.request("POST", path, later)
    assert (status, error) == (
        400,
        bad_request(
            'ConfigMap in version "v2" cannot be handled as a ConfigMap: no kind "ConfigMap" is '
            'registered for version "v2" in scheme "pkg/runtime/scheme.go:111"'
        ),
    )


# ------------------------------------------------------------------------------ timestamps


def new_event(namespace: str, name: str, **fields: Any) -> dict[str, Any]:
    involved = {"kind": "ConfigMap", "name": "thing", "namespace": namespace, "apiVersion": "v1"}
    return {
        "metadata": {"name": name},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "extraction.dev/tests",
        "reportingInstance": "tests",
        "action": "Test",
        "reason": "Testing",
        "regarding": involved,
        "note": "n",
        "type": "Normal",
        **fields,
    }


def core_event(namespace: str, name: str, **fields: Any) -> dict[str, Any]:
    involved = {"kind": "ConfigMap", "name": "thing", "namespace": namespace, "apiVersion": "v1"}
    return {"metadata": {"name": name}, "involvedObject": involved, "reason": "R", **fields}


NEW_EVENTS = "/apis/events.k8s.io/v1/namespaces/{}/events"
CORE_EVENTS = "/api/v1/namespaces/{}/events"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{}/leases"


@pytest.mark.parametrize(
    ("collection", "kind", "make", "error"),
    [
        (
            NEW_EVENTS,
            "Event",
            lambda ns: new_event(ns, "e", eventTime="2026-01-01T00:00:00Z"),
            cannot_parse("2026-01-01T00:00:00Z", MICRO, "Z", ".000000"),
        ),
        (
            NEW_EVENTS,
            "Event",
            lambda ns: new_event(ns, "e", eventTime="2026-01-01T00:00:00.123Z"),
            cannot_parse("2026-01-01T00:00:00.123Z", MICRO, ".123Z", ".000000"),
        ),
        (
            NEW_EVENTS,
            "Event",
            lambda ns: new_event(ns, "e", series={"count": 2, "lastObservedTime": 5}),
            "json: cannot unmarshal number into Go struct field "
            "EventSeries.series.lastObservedTime of type string",
        ),
        (
            CORE_EVENTS,
            "Event",
            lambda ns: core_event(ns, "e", eventTime="2026-01-01T00:00:00Z"),
            cannot_parse("2026-01-01T00:00:00Z", MICRO, "Z", ".000000"),
        ),
        (
            CORE_EVENTS,
            "Event",
            lambda ns: core_event(ns, "e", firstTimestamp="2026-01-01"),
            cannot_parse("2026-01-01", SECONDS, "", "T"),
        ),
        (
            LEASES,
            "Lease",
            lambda ns: {"metadata": {"name": "l"}, "spec": {"renewTime": "2026-01-01T00:00:00Z"}},
            cannot_parse("2026-01-01T00:00:00Z", MICRO, "Z", ".000000"),
        ),
        (
            LEASES,
            "Lease",
            lambda ns: {
                "metadata": {"name": "l"},
                "spec": {"acquireTime": "2026-13-01T00:00:00.000000Z"},
            },
            'parsing time "2026-13-01T00:00:00.000000Z": month out of range',
        ),
        (
            "/api/v1/namespaces/{}/configmaps",
            "ConfigMap",
            lambda ns: {"metadata": {"name": "c", "creationTimestamp": 5}},
            "json: cannot unmarshal number into Go struct field "
            "ObjectMeta.metadata.creationTimestamp of type string",
        ),
        (
            "/apis/batch/v1/namespaces/{}/jobs",
            "Job",
            lambda ns: {
                "metadata": {"name": "j"},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}},
                "status": {"conditions": [{"type": "Complete", "lastTransitionTime": 5}]},
            },
            "json: cannot unmarshal number into Go struct field "
            "JobCondition.status.conditions.lastTransitionTime of type string",
        ),
    ],
    ids=[
        "eventTime-seconds",
        "eventTime-millis",
        "series-number",
        "core-eventTime",
        "core-firstTimestamp-date",
        "lease-renewTime",
        "lease-month",
        "creationTimestamp-number",
        "job-condition-number",
    ],
)
def test_timestamps_that_do_not_decode_are_400(
    cluster: Any,
    namespace: str,
    collection: str,
    kind: str,
    make: Callable[[str], dict[str, Any]],
    error: str,
) -> None:
    status, body, _ = cluster.request("POST", collection.format(namespace), make(namespace))
    assert (status, body) == (
        400,
        bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {error}'),
    )


def test_timestamps_are_stored_in_utc_at_their_precision(cluster: Any, namespace: str) -> None:
    # metav1.Time takes any RFC 3339 and keeps whole seconds; MicroTime keeps six digits.
    collection = CORE_EVENTS.format(namespace)
    old_style = core_event(namespace, "old", firstTimestamp="2026-01-01T00:00:00.5+01:00")
    status, created, _ = cluster.request("POST", collection, old_style)
    assert status == 201
    assert created["firstTimestamp"] == "2025-12-31T23:00:00Z"
    new_style = core_event(
        namespace,
        "new",
        eventTime="2026-01-01T01:00:00.123456+01:00",
        reportingComponent="extraction.dev/tests",
        reportingInstance="tests",
        action="Test",
    )
    status, created, _ = cluster.request("POST", collection, new_style)
    assert status == 201
    assert created["eventTime"] == "2026-01-01T00:00:00.123456Z"


def test_events_are_validated_as_the_api_server_does(cluster: Any, namespace: str) -> None:
    qualified = (
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
        "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    # A core Event with an eventTime is a new-style one: it names who reported it, and how.
    new_style = core_event(namespace, "z", eventTime="2026-01-01T00:00:00.000000Z")
    status, error, _ = cluster.request("POST", CORE_EVENTS.format(namespace), new_style)
    assert status == 422
    assert error["message"] == (
        'Event "z" is invalid: [reportingComponent: Required value, reportingComponent: Invalid '
        f'value: "": name part must be non-empty, reportingComponent: Invalid value: "": '
        f"{qualified}, reportingInstance: Required value, action: Required value]"
    )
    assert error["details"]["kind"] == "Event"
    assert "group" not in error["details"]
    assert [c["reason"] for c in error["details"]["causes"]] == [
        "FieldValueRequired",
        "FieldValueInvalid",
        "FieldValueInvalid",
        "FieldValueRequired",
        "FieldValueRequired",
    ]
    collection = NEW_EVENTS.format(namespace)
    status, error, _ = cluster.request(
        "POST", collection, new_event(namespace, "e", eventTime=None)
    )
    assert status == 422
    assert error["message"] == 'Event "e" is invalid: eventTime: Required value'
    assert error["details"] == {
        "name": "e",
        "kind": "Event",
        "causes": [
            {"reason": "FieldValueRequired", "message": "Required value", "field": "eventTime"}
        ],
    }
    odd = new_event(namespace, "e", reportingController="Bad Name!", type="Odd")
    status, error, _ = cluster.request("POST", collection, odd)
    assert (status, error["message"]) == (
        422,
        f'Event "e" is invalid: [reportingController: Invalid value: "Bad Name!": {qualified}, '
        'type: Invalid value: "": has invalid value: Odd]',
    )


def test_timestamps_that_do_not_decode_fail_updates_and_patches(
    cluster: Any, namespace: str
) -> None:
    collection = NEW_EVENTS.format(namespace)
    status, created, _ = cluster.request("POST", collection, new_event(namespace, "e"))
    assert status == 201
    bad = "2026-01-01T00:00:01Z"
    problem = cannot_parse(bad, MICRO, "Z", ".000000")
    status, error, _ = cluster.request("PUT", f"{collection}/e", {**created, "eventTime": bad})
    assert (status, error) == (
        400,
        bad_request(f'Event in version "v1" cannot be handled as a Event: {problem}'),
    )
    # A patch shows the patched object (JSON and merge patches) or the patch as a Go map.
    status, error, _ = cluster.request(
        "PATCH", f"{collection}/e", {"eventTime": bad}, content_type=MERGE
    )
    assert status == 422
    assert error["reason"] == "Invalid"
    assert error["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert error["message"].endswith(f'}}": {problem}')
    (cause,) = error["details"]["causes"]
    assert list(error["details"]) == ["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "patch")
    status, error, _ = cluster.request(
        "PATCH", f"{collection}/e", {"eventTime": bad, "note": "x"}, content_type=STRATEGIC
    )
    detail = f'Invalid value: "map[eventTime:{bad} note:x]": {problem}'
    assert (status, error["message"]) == (422, f' "" is invalid: patch: {detail}')
    assert error["details"] == {
        "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "patch"}]
    }
