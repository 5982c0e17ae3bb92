"""kopf settings that end up in URLs must be what the API server parses.

A real kube-apiserver parses `timeoutSeconds` (and `limit`) as integers: `timeoutSeconds=270.0`
gets every watch a `400 Bad Request: strconv.ParseInt: parsing "270.0"`, so the operator never
starts. The emulator is lenient, so these tests look at the settings and at the URL kopf builds.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import watching
from kopf._cogs.structs import references

from extraction_operator.api.constants import GROUP, PLURAL, VERSION
from extraction_operator.controller.handlers import configure_settings
from extraction_operator.controller.options import OperatorOptions


def _settings(options: OperatorOptions | None = None) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure_settings(settings, options or OperatorOptions(kubeconfig="unused"))
    return settings


def test_the_watch_server_timeout_is_an_integer() -> None:
    settings = _settings()
    assert type(settings.watching.server_timeout) is int
    assert settings.watching.server_timeout == 270
    assert settings.watching.chunk_size is None or type(settings.watching.chunk_size) is int


def test_a_fractional_watch_timeout_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        OperatorOptions(watch_server_timeout=270.5)  # type: ignore[arg-type]
    # A whole float (from a config file, say) is accepted and stored as an int.
    options = OperatorOptions(watch_server_timeout=120.0)  # type: ignore[arg-type]
    assert type(options.watch_server_timeout) is int
    assert type(_settings(options).watching.server_timeout) is int


def _watch_query(settings: kopf.OperatorSettings, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The query string kopf's own watch code sends, captured instead of sent."""
    urls: list[str] = []

    async def fake_stream(url: str, **_: Any) -> AsyncIterator[Any]:
        urls.append(url)
        return
        yield  # pragma: no cover  (makes this an async generator)

    monkeypatch.setattr(watching.api, "stream", fake_stream)
    resource = references.Resource(GROUP, VERSION, PLURAL, namespaced=True)

    async def drain() -> None:
        pause = asyncio.get_running_loop().create_future()
        async for _ in watching.watch_objs(
            settings=settings,
            resource=resource,
            namespace=None,
            since="1",
            operator_pause_waiter=pause,
        ):
            pass

    asyncio.run(drain())
    assert len(urls) == 1
    return urllib.parse.parse_qs(urllib.parse.urlsplit(urls[0]).query)


def test_the_watch_url_kopf_builds_carries_an_integer_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    query = _watch_query(_settings(), monkeypatch)
    assert query["timeoutSeconds"] == ["270"]
    for name in ("timeoutSeconds", "limit"):
        for value in query.get(name, []):
            assert value.isdigit(), f"{name}={value} is not an integer"
