"""Unit tests of the emulator's patch formats and selector parsing (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extraction_operator.localcluster.apiserver.errors import ApiError
from extraction_operator.localcluster.apiserver.patches import (
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from extraction_operator.localcluster.apiserver.selectors import FieldSelector, LabelSelector

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


@settings(max_examples=100, deadline=None)
@given(json_objects, json_objects)
def test_merge_patch_is_idempotent_and_never_mutates(target: Any, patch: Any) -> None:
    before = repr(target), repr(patch)
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    assert (repr(target), repr(patch)) == before


@settings(max_examples=100, deadline=None)
@given(json_objects)
def test_merge_patch_onto_nothing_drops_nulls_at_object_level(patch: Any) -> None:
    assert merge_patch({}, patch) == _strip_nulls(patch)


def test_json_patch_move_copy_and_escaped_pointers() -> None:
    document = {"a": {"b/c": 1, "d~e": 2}, "list": [1, 2, 3]}
    result = json_patch(
        document,
        [
            {"op": "copy", "from": "/a/b~1c", "path": "/copied"},
            {"op": "move", "from": "/a/d~0e", "path": "/moved"},
            {"op": "add", "path": "/list/1", "value": 9},
            {"op": "remove", "path": "/list/0"},
        ],
    )
    assert result == {"a": {"b/c": 1}, "copied": 1, "moved": 2, "list": [9, 2, 3]}
    assert document == {"a": {"b/c": 1, "d~e": 2}, "list": [1, 2, 3]}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/list/7", "value": 1},
        {"op": "test", "path": "/a", "value": 2},
        {"op": "add", "path": "/a/b/c", "value": 1},
    ],
)
def test_json_patch_failures_are_422(operation: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as error:
        json_patch({"a": 1, "list": []}, [operation])
    assert error.value.code == 422


def test_json_patch_malformed_operation_is_400() -> None:
    with pytest.raises(ApiError) as error:
        json_patch({}, [{"path": "/a"}])
    assert error.value.code == 400


def test_strategic_merge_patch_merges_by_key_and_honours_directives() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
            "args": ["old"],
        }
    }
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "L", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "z"},
            ],
            "args": ["new"],
        },
    }
    result = strategic_merge_patch(pod, patch)
    containers = result["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "c"]
    assert containers[0]["env"] == [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]
    assert containers[0]["image"] == "x"
    assert result["spec"]["args"] == ["new"]
    assert "$setElementOrder/containers" not in result


def test_strategic_merge_patch_replace_directive() -> None:
    result = strategic_merge_patch(
        {"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}}
    )
    assert result == {"spec": {"c": 3}}


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("a=1", {"a": "1"}, True),
        ("a = 1", {"a": "1"}, True),
        ("a!=1", {}, True),
        ("a in (1, 2),b", {"a": "2", "b": ""}, True),
        ("a notin (1,2)", {"a": "2"}, False),
        ("!a", {"a": "x"}, False),
        ("example.com/role=web", {"example.com/role": "web"}, True),
    ],
)
def test_label_selector_matching(text: str, labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.parse(text).matches({"metadata": {"labels": labels}}) is matches


@pytest.mark.parametrize("text", ["a in b", "a=1,", "=1", "a in ()", "a b"])
def test_malformed_label_selectors_are_rejected(text: str) -> None:
    with pytest.raises(ApiError) as error:
        LabelSelector.parse(text)
    assert error.value.code == 400
    assert "labelSelector" in error.value.message


def test_field_selector_rejects_unsupported_fields_naming_the_supported_ones() -> None:
    with pytest.raises(ApiError) as error:
        FieldSelector.parse("spec.x=1", ("status.phase",), False, "pods")
    assert "spec.x" in error.value.message
    assert "status.phase" in error.value.message
    selector = FieldSelector.parse("status.phase!=Running", ("status.phase",), False, "pods")
    assert selector.matches({"status": {"phase": "Pending"}})
    assert not selector.matches({"status": {"phase": "Running"}})
