"""Test harness: the real operator as a child process against the local cluster.

The operator runs exactly as in production (`extraction-operator run`), so tests can stop it,
SIGKILL it and start it again; the local cluster (API emulator + process job runner) lives in the
test process, so tests can read its request log and inject faults directly.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from extraction_operator.api.constants import GROUP, LABEL_RUN, PLURAL, VERSION

# `extraction-operator run` as a child process that tests can stop, kill and restart: the same
# class the chaos benchmark drives, so both exercise the operator exactly the same way.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from chaos import Operator as OperatorProcess

__all__ = [
    "HttpError",
    "Kube",
    "OperatorProcess",
    "read_log",
    "run_phase",
    "stage",
    "wait_for",
]

T = TypeVar("T")
JSON = dict[str, Any]
STAGE_TOOL = str(Path(__file__).with_name("stage_tool.py"))


class HttpError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Kube:
    """Just enough of a client for assertions, over plain HTTP to the emulator."""

    def __init__(self, url: str, namespace: str = "default") -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> JSON:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path + query, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise HttpError(error.code, error.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else {}

    def _runs(self) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}"

    def create_run(self, name: str, spec: JSON, annotations: JSON | None = None) -> JSON:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ExtractionRun",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": spec,
        }
        return self.request("POST", self._runs(), body)

    def get_run(self, name: str) -> JSON:
        return self.request("GET", f"{self._runs()}/{name}")

    def patch_run(self, name: str, patch: JSON) -> JSON:
        return self.request(
            "PATCH", f"{self._runs()}/{name}", patch, "application/merge-patch+json"
        )

    def delete_run(self, name: str) -> None:
        self.request("DELETE", f"{self._runs()}/{name}")

    def jobs(self, run: str | None = None) -> list[JSON]:
        params = {"labelSelector": f"{LABEL_RUN}={run}" if run else LABEL_RUN}
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        return list(self.request("GET", path, params=params).get("items", []))

    def pods(self, run: str) -> list[JSON]:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        return list(
            self.request("GET", path, params={"labelSelector": f"{LABEL_RUN}={run}"})["items"]
        )

    def events(self, name: str) -> list[JSON]:
        path = f"/api/v1/namespaces/{self.namespace}/events"
        items = self.request("GET", path).get("items", [])
        return [e for e in items if e.get("involvedObject", {}).get("name") == name]


def wait_for(
    probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except HttpError as error:
            last = error
        if last:
            return last  # type: ignore[return-value]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last={last!r}")


def run_phase(kube: Kube, name: str, *phases: str) -> Callable[[], JSON | None]:
    def probe() -> JSON | None:
        run = kube.get_run(name)
        return run if run.get("status", {}).get("phase") in phases else None

    return probe


def stage(name: str, log: Path, *, depends_on: list[str] | None = None, **flags: Any) -> JSON:
    """A stage running the stage tool; keyword flags become `--flag value` arguments."""
    args = ["--log", str(log)]
    for flag, value in flags.items():
        if flag in ("shards", "timeoutSeconds", "retry", "circuits"):
            continue
        args += [f"--{flag.replace('_', '-')}", str(value)]
    result: JSON = {
        "name": name,
        "command": ["python", STAGE_TOOL],
        "args": args,
        "dependsOn": depends_on or [],
    }
    for key in ("shards", "timeoutSeconds", "retry", "circuits"):
        if key in flags:
            result[key] = flags[key]
    return result


def read_log(log: Path) -> list[JSON]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
