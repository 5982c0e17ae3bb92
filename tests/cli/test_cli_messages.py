"""What the commands say when the API server refuses: its own words, classified for a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from extraction_operator.client.actions import redrive_value
from extraction_operator.client.errors import api_message, describe_api_error
from extraction_operator.client.logs import LogTarget, _log_error

TARGET = LogTarget("merge", 1, "corpus-merge-1", "corpus-merge-1-abcde", "node-7", "stage")


def refusal(status: int, reason: str, message: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return error


def test_the_api_servers_message_is_quoted_on_one_line() -> None:
    error = refusal(500, "Internal Server Error", 'Get "https://node-7:10250/...":\n  refused')
    assert api_message(error) == 'Get "https://node-7:10250/...": refused'
    assert describe_api_error(error) == (
        'Get "https://node-7:10250/...": refused (500 Internal Server Error)'
    )
    assert api_message(ApiException(status=502, reason="Bad Gateway")) == "Bad Gateway"
    plain = ApiException(status=400)
    plain.body = "not json"
    assert describe_api_error(plain) == "not json (400)"


def test_a_node_without_a_kubelet_api_is_named_with_the_api_servers_error() -> None:
    error = _log_error(
        TARGET, refusal(500, "Internal Server Error", "dial tcp: lookup node-7: no such host")
    )
    assert error.message == (
        "the node serving pod corpus-merge-1-abcde (node-7) does not serve logs: "
        "dial tcp: lookup node-7: no such host (500 Internal Server Error)"
    )


def test_other_log_refusals_say_what_they_are() -> None:
    waiting = refusal(
        400, "Bad Request", 'container "stage" in pod "p" is waiting to start: ContainerCreating'
    )
    assert _log_error(TARGET, waiting).message == (
        "pod corpus-merge-1-abcde (node merge attempt 1) has no output yet: "
        'container "stage" in pod "p" is waiting to start: ContainerCreating'
    )
    gone = _log_error(TARGET, refusal(404, "Not Found", 'pods "x" not found'))
    assert gone.message.endswith('is gone: pods "x" not found (404 Not Found)')
    forbidden = _log_error(TARGET, refusal(403, "Forbidden", "cannot get pods/log"))
    assert forbidden.message.startswith("not allowed to read the log of pod corpus-merge-1-abcde")


def test_a_redrive_value_is_new_even_within_the_same_microsecond() -> None:
    now = datetime(2026, 11, 23, 3, 0, 9, 123456, tzinfo=UTC)
    assert redrive_value(now, "") == "2026-11-23T03:00:09.123456Z"
    assert redrive_value(now, "2026-11-23T03:00:09.123456Z") == "2026-11-23T03:00:09.123456Z-2"
