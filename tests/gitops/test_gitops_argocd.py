"""The Argo CD health check of ExtractionRun (manifests/argocd/resource_customizations/...), run by
a real Lua 5.1 interpreter (PyPI's lupa) the way Argo CD runs it.

Argo CD (util/lua) runs health.lua in gopher-lua, a Lua 5.1: a fresh state per call, the object
as the global `obj`, the value the chunk returns encoded to JSON and decoded into
`{status, message}`. From argocd-cm, without `resource.customizations.useOpenLibs`, only the base
functions, `table`, `os` (a safe subset) and `package` are loaded: no `string`, no `math`, and no
string methods. Built-in scripts (upstream's resource_customizations/) get every library. The
object is the YAML (testdata) or the live object converted with Argo CD's rules: JSON objects
become tables keyed by string, JSON arrays 1-based sequences with null items dropped, null keys
absent, numbers Lua numbers; an empty object and an empty array are the same empty table.

The testdata come from real runs (tests/gitops/capture_testdata.py); the real-tier test at the
end judges live runs as Argo CD would see them.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import lupa.lua51 as lua
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from capture_testdata import (
    HEALTH_DIR,
    failed_run,
    running_run,
    succeeded_run,
)

from cluster_kit import InstalledOperator, Kubectl, wait_for
from extraction_operator.api.models import ExtractionRunStatus, NodePhase, RunPhase
from extraction_operator.api.validation import parse_spec

SCRIPT = (HEALTH_DIR / "health.lua").read_text()
HEALTH_TEST = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
JSON = dict[str, Any]

# What gopher-lua's OpenBase, OpenTable, OpenPackage and Argo CD's safe `os` give a script from
# argocd-cm (util/lua/lua.go, runLua, with SkipOpenLibs).
ARGOCD_CM_GLOBALS = (
    "assert", "collectgarbage", "dofile", "error", "getfenv", "getmetatable", "ipairs", "load",
    "loadfile", "loadstring", "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawset",
    "select", "setfenv", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall",
    "_VERSION", "module", "require", "package", "table",
)  # fmt: skip
SAFE_OS = ("clock", "date", "difftime", "time")

RUNNER = """
local names, safe_os = ...
return function(source, obj, open_libs)
  local chunk, problem = loadstring(source, "=health.lua")
  if chunk == nil then
    error(problem, 0)
  end
  local env = {}
  if open_libs then
    for name, value in pairs(_G) do
      if name ~= "python" then
        env[name] = value
      end
    end
  else
    for _, name in ipairs(names) do
      env[name] = _G[name]
    end
    env.os = {}
    for _, name in ipairs(safe_os) do
      env.os[name] = os[name]
    end
  end
  env._G = env
  env.obj = obj
  setfenv(chunk, env)
  return chunk()
end
"""


class ArgoError(Exception):
    """What Argo CD reports as an error of the health check (the resource's health is then
    unknown and the error is shown instead)."""


class ArgoHealth:
    """health.lua as Argo CD's controller runs it: `open_libs` False from argocd-cm."""

    def __init__(self, open_libs: bool) -> None:
        self.open_libs = open_libs
        self.runtime = lua.LuaRuntime(register_eval=False, unpack_returned_tuples=False)
        if not open_libs:
            # gopher-lua without OpenString has no string metatable: `("x"):lower()` fails.
            self.runtime.execute('debug.setmetatable("", nil)')
        names = self._sequence(list(ARGOCD_CM_GLOBALS))
        safe_os = self._sequence(list(SAFE_OS))
        self.run = self.runtime.execute(RUNNER, names, safe_os)

    def _sequence(self, items: list[Any]) -> Any:
        table = self.runtime.table()
        for index, item in enumerate(items, start=1):
            table[index] = item
        return table

    def to_lua(self, value: Any) -> Any:
        """util/lua.decodeValue: Go's unstructured object to gopher-lua values."""
        if isinstance(value, bool | str):
            return value
        if isinstance(value, int | float):
            return float(value)  # float64 from JSON, int64 from the API: an LNumber either way
        if isinstance(value, list):
            # LTable.Append ignores nil: a null item leaves no hole.
            return self._sequence([self.to_lua(v) for v in value if v is not None])
        if isinstance(value, dict):
            table = self.runtime.table()
            for key, item in value.items():
                converted = self.to_lua(item)
                if converted is not None:
                    table[str(key)] = converted
            return table
        return None  # nil, and any type decodeValue does not know

    def __call__(self, obj: JSON, source: str = SCRIPT) -> JSON:
        try:
            returned = self.run(source, self.to_lua(obj), self.open_libs)
        except lua.LuaError as error:
            raise ArgoError(f"health.lua failed: {error}") from error
        if isinstance(returned, tuple):
            returned = returned[-1] if returned else None  # the top of the stack
        return self._health_status(returned)

    @staticmethod
    def _health_status(value: Any) -> JSON:
        """luajson.Encode, then json.Unmarshal into gitops-engine's HealthStatus."""
        if lua.lua_type(value) != "table":
            kind = lua.lua_type(value) or ("nil" if value is None else type(value).__name__)
            raise ArgoError(f"expect table output from Lua script, not {kind}")
        keys = list(value.keys())
        if not keys or not all(isinstance(key, str) for key in keys):
            # An empty table encodes as `[]`, a sequence as an array, mixed keys not at all.
            raise ArgoError("the returned table is not a JSON object")
        result: JSON = {}
        for field in ("status", "message"):
            item = value[field]
            if item is None:
                result[field] = ""
            elif isinstance(item, str):
                result[field] = item
            else:
                raise ArgoError(f"cannot unmarshal {lua.lua_type(item)} into HealthStatus.{field}")
        if result["status"] not in HEALTH_STATUSES:
            return {"status": "Unknown", "message": "Lua returned an invalid health status"}
        return result


@pytest.fixture(scope="module", params=[False, True], ids=["argocd-cm", "built-in"])
def argo(request: pytest.FixtureRequest) -> ArgoHealth:
    return ArgoHealth(open_libs=request.param)


@pytest.fixture(scope="module")
def strict() -> ArgoHealth:
    return ArgoHealth(open_libs=False)


class _NoTimestamps(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it into an unstructured object: timestamps stay strings."""


_NoTimestamps.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_testdata(input_path: str) -> JSON:
    obj: JSON = yaml.load((HEALTH_DIR / input_path).read_text(), Loader=_NoTimestamps)
    return obj


def captured(name: str) -> JSON:
    return load_testdata(f"testdata/{name}.yaml")


TESTS = HEALTH_TEST["tests"]

# ----------------------------------------------------------------------------- health_test.yaml


def test_health_test_yaml_has_argo_cds_layout() -> None:
    assert set(HEALTH_TEST) == {"tests"}
    for test in TESTS:
        assert set(test) == {"healthStatus", "inputPath"}
        assert set(test["healthStatus"]) <= {"status", "message"}
        assert test["healthStatus"]["status"] in HEALTH_STATUSES
        assert test["inputPath"].startswith("testdata/")
    listed = sorted(test["inputPath"] for test in TESTS)
    files = sorted(f"testdata/{p.name}" for p in (HEALTH_DIR / "testdata").glob("*.yaml"))
    assert listed == files, "every testdata file is a case, and every case has its file"


def test_the_testdata_are_real_runs_in_every_state() -> None:
    """Every state a GitOps tool must judge, each from a run the operator really drove there."""
    objects = {Path(test["inputPath"]).stem: load_testdata(test["inputPath"]) for test in TESTS}
    for name, obj in objects.items():
        assert obj["apiVersion"] == "extraction.dev/v1alpha1", name
        assert obj["kind"] == "ExtractionRun", name
        spec, problems = parse_spec(obj["spec"])
        assert spec is not None, (name, problems)
        assert bool(problems) == (name == "invalid_spec"), (name, problems)
        if "status" in obj:
            ExtractionRunStatus.model_validate(obj["status"])
    phases = {obj.get("status", {}).get("phase") for obj in objects.values()}
    assert phases == {*get_args(RunPhase), None}
    node_phases = {
        node["phase"]
        for obj in objects.values()
        for node in obj.get("status", {}).get("nodes", {}).values()
    }
    assert node_phases == set(get_args(NodePhase))
    stalled = objects["invalid_spec"]["status"]["conditions"]
    assert {"type": "Stalled", "status": "True", "reason": "InvalidSpec"}.items() <= next(
        c for c in stalled if c["type"] == "Stalled"
    ).items()
    stale = objects["stale_generation"]
    assert stale["status"]["observedGeneration"] < stale["metadata"]["generation"]
    # Not written by the operator yet: the CRD's default, or nothing under a CRD without it.
    assert objects["no_status"]["status"] == {"observedGeneration": 0}
    assert "status" not in objects["no_status_without_default"]


@pytest.mark.parametrize("case", TESTS, ids=[Path(t["inputPath"]).stem for t in TESTS])
def test_health_of_every_case(argo: ArgoHealth, case: JSON) -> None:
    expected = {"status": "", "message": "", **case["healthStatus"]}
    assert argo(load_testdata(case["inputPath"])) == expected


def test_the_expected_health_follows_the_documented_mapping() -> None:
    """health_test.yaml is generated with the testdata: hold it to the mapping of docs/gitops.md."""
    expected = {
        "pending": "Progressing",
        "running": "Progressing",
        "running_stage_not_started": "Progressing",
        "waiting": "Progressing",
        "blocked": "Progressing",
        "suspended": "Suspended",
        "succeeded": "Healthy",
        "failed": "Degraded",
        "invalid_spec": "Degraded",
        "stale_generation": "Progressing",
        "no_status": "Progressing",
        "no_status_without_default": "Progressing",
    }
    assert {Path(t["inputPath"]).stem: t["healthStatus"]["status"] for t in TESTS} == expected
    for test in TESTS:
        obj = load_testdata(test["inputPath"])
        message = test["healthStatus"]["message"]
        if "status" in obj and obj["status"]["observedGeneration"] == obj["metadata"]["generation"]:
            assert message == obj["status"]["message"], "the run's own summary"
    docs = (Path(__file__).resolve().parents[2] / "docs" / "gitops.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("| `")]
    for phase, health in [
        ("Succeeded", "Healthy"),
        ("Failed", "Degraded"),
        ("Suspended", "Suspended"),
        ("Running", "Progressing"),
        ("Pending", "Progressing"),
    ]:
        documented = [row for row in rows if row.startswith(f"| `{phase}`")]
        assert documented, f"docs/gitops.md has no row for phase {phase}"
        assert all(f"| `{health}` |" in row for row in documented), documented


# ------------------------------------------------------------------------------- the mapping


def _without_conditions(obj: JSON) -> JSON:
    changed = copy.deepcopy(obj)
    changed["status"].pop("conditions", None)
    return changed


@pytest.mark.parametrize(
    "name", ["pending", "running", "waiting", "blocked", "suspended", "succeeded", "failed"]
)
def test_the_phase_is_the_fallback_without_conditions(strict: ArgoHealth, name: str) -> None:
    obj = captured(name)
    assert strict(_without_conditions(obj)) == strict(obj)


def test_conditions_win_over_the_phase(strict: ArgoHealth) -> None:
    obj = captured("running")
    obj["status"]["phase"] = "Succeeded"  # a phase that disagrees with fresh conditions
    assert strict(obj)["status"] == "Progressing"
    stalled = captured("invalid_spec")
    assert stalled["status"]["phase"] == "Pending"  # an invalid spec never started
    assert strict(stalled)["status"] == "Degraded"


def test_a_condition_about_an_older_generation_is_stale(strict: ArgoHealth) -> None:
    obj = captured("succeeded")
    obj["metadata"]["generation"] = 3
    obj["status"]["observedGeneration"] = 3
    obj["status"]["conditions"][0]["observedGeneration"] = 2  # Ready, from before the change
    assert strict(obj) == {
        "status": "Progressing",
        "message": "waiting for the operator to observe generation 3",
    }


def test_a_stale_status_is_progressing_whatever_it_says(strict: ArgoHealth) -> None:
    for name in ("succeeded", "failed", "suspended", "invalid_spec"):
        obj = captured(name)
        obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
        assert strict(obj)["status"] == "Progressing", name


def test_a_run_the_operator_has_not_written_is_progressing(strict: ArgoHealth) -> None:
    """The CRD's default status (observedGeneration 0) is a stale status like any other; without
    it (an older CRD, or a tool that drops it), an absent or empty status waits the same way."""
    defaulted = captured("no_status")
    assert strict(defaulted) == {
        "status": "Progressing",
        "message": "waiting for the operator to observe generation 1",
    }
    absent = captured("no_status_without_default")
    waiting = {
        "status": "Progressing",
        "message": "waiting for the operator to report the run's status",
    }
    assert strict(absent) == waiting
    for status in ({}, []):  # an empty object and an empty array are the same empty table
        assert strict({**absent, "status": status}) == waiting
    without = copy.deepcopy(defaulted)
    del without["status"]
    assert strict(without) == waiting


def test_an_unknown_phase_is_unknown(strict: ArgoHealth) -> None:
    obj = _without_conditions(captured("running"))
    obj["status"]["phase"] = "Exploded"
    assert strict(obj) == {"status": "Unknown", "message": "unknown phase Exploded"}


def test_messages_fall_back_when_the_run_has_none(strict: ArgoHealth) -> None:
    obj = captured("failed")
    obj["status"].pop("message")
    for item in obj["status"]["conditions"]:
        item.pop("message")
    assert strict(obj) == {"status": "Degraded", "message": "Error"}  # the Stalled reason


# ---------------------------------------------------------------------------- the interpreter


def test_the_sandbox_is_as_strict_as_argocd_cm(strict: ArgoHealth) -> None:
    """A script that needs a library argocd-cm does not load fails here, so health.lua does not."""
    for needs in ('("x"):lower()', "string.lower('x')", "math.floor(1.5)", "io.write('x')"):
        source = f"local x = {needs}\nreturn {{status = 'Healthy'}}"
        with pytest.raises(ArgoError):
            strict(captured("running"), source)
    assert strict(captured("running"), "return {status = 'Healthy'}")["status"] == "Healthy"


def test_arrays_are_one_based_and_nulls_are_dropped(strict: ArgoHealth) -> None:
    source = """
    local c = obj.status.conditions
    return {status = "Healthy", message = #c .. " " .. c[1].type .. " " .. tostring(c[0])
      .. " " .. tostring(obj.status.message) .. " " .. tostring(obj.metadata.generation)}
    """
    obj = {
        "metadata": {"generation": 2},
        "status": {"conditions": [None, {"type": "Ready"}], "message": None},
    }
    assert strict(obj, source)["message"] == "1 Ready nil nil 2"


def test_argo_cds_handling_of_what_a_script_returns(strict: ArgoHealth) -> None:
    obj = captured("running")
    assert strict(obj, "return {status = 'Sideways'}") == {
        "status": "Unknown",
        "message": "Lua returned an invalid health status",
    }
    for source in ("return nil", "return {}", "return {status = 1}", "error('boom')"):
        with pytest.raises(ArgoError):
            strict(obj, source)


# ------------------------------------------------------------------------------- robustness

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["True", "False", "Unknown", "Ready", "Stalled", "Reconciling", "Suspended",
                       "Running", "Pending", "Succeeded", "Failed", "InvalidSpec"])
)  # fmt: skip
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "status", "reason", "message", "observedGeneration", "phase"])
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(obj: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    changed = copy.copy(obj)
    changed[path[0]] = _replace(obj[path[0]], path[1:], new)
    return changed


def _assert_valid(argo: ArgoHealth, obj: Any) -> None:
    health = argo(obj)
    assert health["status"] in HEALTH_STATUSES - {"Missing"}
    assert health["status"] != "Unknown" or health["message"].startswith(
        ("unknown phase", "status.phase")
    )
    assert health["message"], "every verdict says why"


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REAL = [load_testdata(test["inputPath"]) for test in TESTS]


@FUZZ
@given(data=st.data())
def test_any_part_of_a_real_run_may_be_garbage(strict: ArgoHealth, data: st.DataObject) -> None:
    obj = data.draw(st.sampled_from(REAL))
    path = data.draw(st.sampled_from(list(_paths(obj))[1:]))  # never `obj` itself
    _assert_valid(strict, _replace(obj, path, data.draw(_json)))


@FUZZ
@given(metadata=_json, status=_json)
def test_any_status_and_metadata(strict: ArgoHealth, metadata: Any, status: Any) -> None:
    obj: JSON = {"apiVersion": "extraction.dev/v1alpha1", "kind": "ExtractionRun"}
    if metadata is not None:
        obj["metadata"] = metadata
    if status is not None:
        obj["status"] = status
    _assert_valid(strict, obj)


@pytest.mark.parametrize(
    "status",
    [
        "Running",
        42,
        True,
        [],
        ["Ready"],
        {"conditions": "Ready"},
        {"conditions": {"type": "Ready", "status": "True"}},
        {"conditions": ["Ready", 1, None, [], {}]},
        {"conditions": [{"type": "Stalled", "status": True}], "phase": 7},
        {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": "1"}]},
        {"conditions": [{"type": "Ready", "status": "True", "message": {"a": 1}}]},
        {"observedGeneration": "one", "phase": "Running", "message": 12},
        {"observedGeneration": 1, "phase": ["Running"]},
    ],
)
def test_malformed_statuses(strict: ArgoHealth, status: Any) -> None:
    for metadata in ({"generation": 2}, {"generation": "2"}, {}, "x"):
        _assert_valid(strict, {"metadata": metadata, "status": status})


def test_every_verdict_is_quick(strict: ArgoHealth) -> None:
    """Argo CD cancels a script after one second; this one takes well under a millisecond."""
    started = time.perf_counter()
    for obj in REAL * 10:
        strict(obj)
    assert (time.perf_counter() - started) / (len(REAL) * 10) < 0.05


# ------------------------------------------------------------------------------ real cluster

NAMESPACE = "default"


def _live(kube: Kubectl, name: str) -> JSON:
    return kube.json("get", "extractionrun", name, "-n", NAMESPACE)


def _reach(kube: Kubectl, name: str, check: Callable[[JSON], bool]) -> JSON:
    def probe() -> JSON | None:
        obj = _live(kube, name)
        return obj if check(obj) else None

    return wait_for(f"run {name}", probe, 180)


@pytest.mark.timeout(400)
def test_live_runs_judged_as_argo_cd_sees_them(
    kube: Kubectl, installed_operator: InstalledOperator
) -> None:
    """Running, Succeeded and Failed runs of the operator installed from manifests/, read with
    `kubectl get -o json` (what Argo CD's cache holds) and judged by health.lua."""
    argo = ArgoHealth(open_libs=False)
    suffix = uuid.uuid4().hex[:6]
    names = {kind: f"argocd-{kind}-{suffix}" for kind in ("running", "succeeded", "failed")}
    kube.apply([running_run(names["running"]), succeeded_run(names["succeeded"]),
                failed_run(names["failed"])])  # fmt: skip
    try:
        # Right after the apply, whether or not the operator has written yet: the API server
        # serves the CRD's default status (observedGeneration 0) until it has, so a run whose
        # stage sleeps for ten minutes is on its way either way.
        first = _live(kube, names["running"])
        assert first["status"]["observedGeneration"] in (0, 1), first["status"]
        health = argo(first)
        assert health["status"] == "Progressing"
        if first["status"]["observedGeneration"] == 0:
            assert first["status"] == {"observedGeneration": 0}
            assert health["message"] == "waiting for the operator to observe generation 1"
        else:
            assert health["message"] == first["status"]["message"]
        running = _reach(
            kube,
            names["running"],
            lambda o: (
                o.get("status", {}).get("nodes", {}).get("extract", {}).get("phase") == "Running"
            ),
        )
        assert argo(running) == {"status": "Progressing", "message": running["status"]["message"]}
        assert running["status"]["message"] == "1/2 done; running: extract"

        done = _reach(
            kube, names["succeeded"], lambda o: o.get("status", {}).get("phase") == "Succeeded"
        )
        assert argo(done) == {"status": "Healthy", "message": "4/4 done"}

        failed = _reach(
            kube, names["failed"], lambda o: o.get("status", {}).get("phase") == "Failed"
        )
        health = argo(failed)
        assert health["status"] == "Degraded"
        assert health["message"] == failed["status"]["message"]
        assert "provider returned HTTP 503" in health["message"]
        # The JSON Argo CD gets round-trips through the same conversion as the testdata.
        assert argo(json.loads(json.dumps(failed))) == health
    finally:
        for name in names.values():
            kube.run("delete", "extractionrun", name, "-n", NAMESPACE, "--wait=false", check=False)
