"""A small asynchronous Kubernetes REST client for the operator's own writes.

Why not the `kubernetes` client: from v35 its API classes are generated pydantic models, which
re-validate every Job we build as a plain dict, block the event loop (they are synchronous), and
hide the response headers we need for `Retry-After`. The operator only needs a handful of raw JSON
calls, so it speaks HTTP with aiohttp and keeps the `kubernetes` package for what it is good at:
loading credentials (in-cluster tokens with rotation, kubeconfig exec plugins, client certs).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes import client

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A non-2xx answer, with the fields of the API server's `Status` body."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after: str | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def is_conflict(self) -> bool:
        """409 (stale resourceVersion, or AlreadyExists) and 422 from a failed JSON-patch `test`."""
        return self.status in (409, 422)


class KubeRest:
    """HTTP calls against the API server named by a `kubernetes.client.Configuration`."""

    def __init__(self, configuration: client.Configuration, *, timeout: float = 30.0) -> None:
        self._configuration = configuration
        self._base = configuration.host.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self._base.startswith("https"):
            return False
        if not self._configuration.verify_ssl:
            return False
        context = ssl.create_default_context(cafile=self._configuration.ssl_ca_cert)
        if self._configuration.cert_file:
            context.load_cert_chain(self._configuration.cert_file, self._configuration.key_file)
        return context

    def _headers(self) -> dict[str, str]:
        configuration = self._configuration
        hook = getattr(configuration, "refresh_api_key_hook", None)
        if hook is not None:
            hook(configuration)  # rotated service-account tokens are re-read here
        headers = {"Accept": "application/json", "User-Agent": "extraction-operator"}
        token = configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        elif configuration.username:
            basic = aiohttp.BasicAuth(configuration.username, configuration.password or "")
            headers["Authorization"] = basic.encode()
        return headers

    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=32)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> JSON:
        session = await self._ensure_session()
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with session.request(
            method, self._base + path, data=data, headers=headers, params=params
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise _error_from(response.status, text, response.headers.get("Retry-After"))
            if not text:
                return {}
            parsed = json.loads(text)
            return parsed if isinstance(parsed, dict) else {"items": parsed}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_from(status: int, text: str, retry_after: str | None) -> ApiError:
    reason, message = "", text[:500]
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason", ""))
        message = str(parsed.get("message", message))
    return ApiError(status, reason, message, retry_after)
