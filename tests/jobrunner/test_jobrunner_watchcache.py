"""Unit tests of the watch cache's relist merge, which keeps a just-created pod from vanishing."""

from __future__ import annotations

from typing import Any

from extraction_operator.localcluster.watchcache import WatchCache, key_of, rv_of

JSON = dict[str, Any]


def obj(name: str, rv: int) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


class SnapshotClient:
    """Answers every list with a fixed snapshot (a list taken before our own write)."""

    def __init__(self, items: list[JSON], rv: str) -> None:
        self.items = items
        self.rv = rv

    async def list(self, path: str) -> tuple[list[JSON], str]:
        return self.items, self.rv


async def test_relist_keeps_newer_own_writes_and_drops_deleted_objects() -> None:
    events: list[tuple[str, str]] = []

    def record(kind: str, old: JSON | None, new: JSON | None) -> None:
        events.append((kind, ((new or old) or {})["metadata"]["name"]))

    client = SnapshotClient([obj("kept", 4), obj("changed", 5)], "5")
    cache = WatchCache(client, "/api/v1/pods", record)  # type: ignore[arg-type]
    cache.remember(obj("created-by-us", 7))
    cache.remember(obj("deleted-meanwhile", 3))
    cache.remember(obj("changed", 2))
    events.clear()
    assert await cache._relist() == "5"
    assert sorted(name for _, name in cache.objects) == ["changed", "created-by-us", "kept"]
    assert rv_of(cache.objects[("ns", "changed")]) == 5
    assert sorted(events) == [
        ("ADDED", "kept"),
        ("DELETED", "deleted-meanwhile"),
        ("MODIFIED", "changed"),
    ]
    assert cache.synced.is_set()


def test_remember_never_replaces_a_newer_copy() -> None:
    cache = WatchCache(SnapshotClient([], "1"), "/x", lambda *_: None)  # type: ignore[arg-type]
    cache.remember(obj("a", 9))
    cache.remember(obj("a", 8))
    assert rv_of(cache.objects[("ns", "a")]) == 9


def test_malformed_objects_have_no_key() -> None:
    assert key_of({"metadata": {"namespace": "x"}}) is None
    assert key_of({"metadata": "junk"}) is None
    assert rv_of({"metadata": {"resourceVersion": "abc"}}) == -1
