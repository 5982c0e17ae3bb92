"""A stage whose ServiceAccount may not touch its run: the SDK says "forbidden", who, and the fix.

The API here is a stub HTTP server answering every request the way kube-apiserver answers the
namespace's `default` ServiceAccount (403 with a Status naming the user), reached through the real
`kubernetes` client, so the whole path from the HTTP answer to the log line is exercised.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from extraction_operator.breaker.api import AccessDenied
from extraction_operator.breaker.kube import KubernetesRunApi
from extraction_operator.stage import breaker_from_env, circuit, set_breaker

USER = "system:serviceaccount:team:default"
FORBIDDEN = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": (
        f'extractionruns.extraction.dev "corpus" is forbidden: User "{USER}" cannot get '
        'resource "extractionruns" in API group "extraction.dev" in the namespace "team"'
    ),
    "reason": "Forbidden",
    "code": 403,
}


class _Forbidding(BaseHTTPRequestHandler):
    requests: list[str] = []

    def _answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(FORBIDDEN).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def forbidding_api() -> Iterator[tuple[Any, list[str]]]:
    _Forbidding.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forbidding)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    configuration.retries = False
    api_client = client.ApiClient(configuration)
    try:
        yield api_client, _Forbidding.requests
    finally:
        api_client.close()
        server.shutdown()
        server.server_close()


def test_a_403_is_access_denied_naming_the_user(forbidding_api: tuple[Any, list[str]]) -> None:
    api_client, _ = forbidding_api
    api = KubernetesRunApi("team", "corpus", api_client=api_client)
    with pytest.raises(AccessDenied) as denied:
        api.read()
    assert denied.value.status == 403
    assert denied.value.identity == USER
    assert denied.value.run == "team/corpus"


def test_a_refused_breaker_is_logged_as_forbidden_with_the_fix_and_the_stage_carries_on(
    forbidding_api: tuple[Any, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    api_client, requests = forbidding_api
    env = {
        "EXTRACTION_RUN": "corpus",
        "EXTRACTION_NAMESPACE": "team",
        "EXTRACTION_CIRCUITS": json.dumps({"llm": {"failureThreshold": 2}}),
    }
    breaker = breaker_from_env(env, api_client=api_client)
    set_breaker(breaker)
    try:
        with caplog.at_level(logging.DEBUG):
            calls = 0
            for _ in range(5):
                with circuit("llm"):
                    calls += 1  # fails open: every call runs
            for _ in range(3):
                with pytest.raises(TimeoutError), circuit("llm"):
                    raise TimeoutError("provider slow")
    finally:
        set_breaker(None)
    assert calls == 5
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, "reported once, not per call"
    text = errors[0]
    assert "forbidden" in text
    assert USER in text
    assert "spec.stages[].circuits" in text
    assert "extraction-stage-<run>" in text
    assert "unreachable" not in caplog.text.lower()
    assert breaker.stats.access_denied >= 1
    assert len(requests) <= 2, f"a refusal must pause the bookkeeping, not retry: {requests}"
