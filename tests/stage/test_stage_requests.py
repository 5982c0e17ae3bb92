"""What the stage SDK sends to the API server: PATCH only (a read is an empty merge patch), and how
it reads the admission policy's answer that the run does not name this pod's Job yet.

A stub HTTP server stands in for kube-apiserver, reached through the real `kubernetes` client; the
real tier checks the same against the real admission policy (tests/isolation)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from extraction_operator.breaker.api import NOT_ENROLLED_MARKER, AccessDenied, NotEnrolled
from extraction_operator.breaker.kube import KubernetesRunApi

RUN = {
    "apiVersion": "extraction.dev/v1alpha1",
    "kind": "ExtractionRun",
    "metadata": {"name": "corpus", "namespace": "team", "uid": "u-1", "resourceVersion": "7"},
    "spec": {"circuitBreakers": {"llm": {"failureThreshold": 3}}},
}


class Stub(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, Any]] = []
    answer: tuple[int, dict[str, Any]] = (200, RUN)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        type(self).seen.append(
            (self.command, self.path, self.headers.get("Content-Type", ""), body)
        )
        status, payload = type(self).answer
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def api() -> Iterator[KubernetesRunApi]:
    Stub.seen = []
    Stub.answer = (200, RUN)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    configuration.retries = False
    yield KubernetesRunApi("team", "corpus", uid="u-1", api_client=client.ApiClient(configuration))
    server.shutdown()
    server.server_close()


def test_a_read_is_an_empty_merge_patch_never_a_get(api: KubernetesRunApi) -> None:
    snapshot = api.read()
    assert snapshot.resource_version == "7"
    assert snapshot.circuit_configs == {"llm": {"failureThreshold": 3}}
    ((method, path, content_type, body),) = Stub.seen
    assert (method, body) == ("PATCH", {})
    assert content_type == "application/merge-patch+json"
    assert path == "/apis/extraction.dev/v1alpha1/namespaces/team/extractionruns/corpus"


def test_a_write_is_a_merge_patch_with_the_resource_version_precondition(
    api: KubernetesRunApi,
) -> None:
    api.write("7", '{"v":1,"circuits":{}}')
    ((method, _, content_type, body),) = Stub.seen
    assert method == "PATCH"
    assert content_type == "application/merge-patch+json"
    assert body == {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {"extraction.dev/circuit-breakers": '{"v":1,"circuits":{}}'},
        }
    }


def _forbidden(message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
            "code": 403, "message": message}  # fmt: skip


def test_the_policys_not_yet_answer_is_not_enrolled(api: KubernetesRunApi) -> None:
    Stub.answer = (
        403,
        _forbidden(
            'extractionruns.extraction.dev "corpus" is forbidden: ValidatingAdmissionPolicy '
            "'extraction-stage-confinement' with binding 'extraction-stage-confinement' denied "
            f"request: pod corpus-a-1-x7k2p {NOT_ENROLLED_MARKER} team/corpus (yet): ..."
        ),
    )
    with pytest.raises(NotEnrolled) as refused:
        api.read()
    assert refused.value.run == "team/corpus"
    assert refused.value.status == 403


def test_any_other_refusal_is_access_denied(api: KubernetesRunApi) -> None:
    Stub.answer = (
        403,
        _forbidden(
            "... denied request: a stage pod may not change the spec of ExtractionRun team/corpus"
        ),
    )
    with pytest.raises(AccessDenied) as refused:
        api.write("7", "{}")
    assert not isinstance(refused.value, NotEnrolled)
