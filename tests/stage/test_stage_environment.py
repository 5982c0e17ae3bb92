"""Building the process-wide breaker from the env the operator sets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from extraction_operator.breaker.memory import InMemoryRunApi
from extraction_operator.breaker.runtime import default_holder
from extraction_operator.stage import CircuitOpen, breaker_from_env, circuit


def test_without_a_run_the_breaker_is_process_local_and_still_works() -> None:
    breaker = breaker_from_env(
        {"EXTRACTION_CIRCUITS": '{"llm": {"failureThreshold": 1, "recoveryTimeoutSeconds": 60}}'}
    )
    assert isinstance(breaker.store.api, InMemoryRunApi)
    assert breaker.config("llm").failure_threshold == 1
    llm = circuit("llm", breaker=breaker)
    with pytest.raises(TimeoutError), llm:
        raise TimeoutError()
    with pytest.raises(CircuitOpen), llm:
        pass


def test_local_scope_is_forced_by_env() -> None:
    breaker = breaker_from_env(
        {
            "EXTRACTION_RUN": "r",
            "EXTRACTION_NAMESPACE": "ns",
            "EXTRACTION_BREAKER_SCOPE": "local",
        }
    )
    assert isinstance(breaker.store.api, InMemoryRunApi)
    assert "EXTRACTION_BREAKER_SCOPE" in breaker.store.api.description


def test_no_cluster_config_falls_back_to_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        breaker = breaker_from_env({"EXTRACTION_RUN": "r", "EXTRACTION_NAMESPACE": "ns"})
    assert isinstance(breaker.store.api, InMemoryRunApi)
    assert "process-local" in caplog.text


def test_kubeconfig_is_used_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    breaker = breaker_from_env({"EXTRACTION_RUN": "r", "EXTRACTION_NAMESPACE": "ns"})
    assert breaker.store.api.description == "ns/r"


@pytest.mark.parametrize("value", ["zero", "0", "1000"])
def test_bad_retry_budget_falls_back_to_default(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        breaker_from_env({"EXTRACTION_BREAKER_MAX_ATTEMPTS": value})
    assert "EXTRACTION_BREAKER_MAX_ATTEMPTS" in caplog.text


def test_bad_circuit_env_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        breaker = breaker_from_env({"EXTRACTION_CIRCUITS": "{nope"})
    assert "EXTRACTION_CIRCUITS is not valid JSON" in caplog.text
    assert breaker.config("llm").failure_threshold == 5


def test_holder_names_pod_node_attempt_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "run-mentions-3-1-abcde")
    monkeypatch.setenv("EXTRACTION_NODE", "mentions[3]")
    monkeypatch.setenv("EXTRACTION_ATTEMPT", "1")
    holder = default_holder()
    assert holder.startswith("run-mentions-3-1-abcde mentions[3]#1 pid ")


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("EXTRACTION_BREAKER_MAX_SECONDS", "300", "_max_seconds", 300.0),
        ("EXTRACTION_BREAKER_MAX_SECONDS", "0", "_max_seconds", 15.0),
        ("EXTRACTION_BREAKER_ENROLLMENT_SECONDS", "180", "_enrollment_wait", 180.0),
        ("EXTRACTION_BREAKER_ENROLLMENT_SECONDS", "nan", "_enrollment_wait", 60.0),
        ("EXTRACTION_BREAKER_ENROLLMENT_SECONDS", "-1", "_enrollment_wait", 60.0),
        ("EXTRACTION_BREAKER_MAX_ATTEMPTS", "40", "_max_attempts", 40),
    ],
)
def test_budgets_are_tunable_within_bounds(
    name: str, value: str, attribute: str, expected: float
) -> None:
    breaker = breaker_from_env({name: value})
    assert getattr(breaker.store, attribute) == expected
