"""Provider outages in the planner: excused failures and one probe pod per recovering circuit."""

from __future__ import annotations

from datetime import timedelta

from planner_kit import (
    NOW,
    FakeCluster,
    created_nodes,
    event_reasons,
    no_jitter,
    spec,
    stage,
)

from extraction_operator.breaker.attribution import format_marker
from extraction_operator.planner import CircuitGate
from extraction_operator.planner.outage import Verdict, attribute


def provider_failure(generation: int, text: str = "ProviderHTTPError: HTTP 503") -> str:
    return f"{text}\n{format_marker({'llm': generation})}"


def shards(count: int, *, limit: int = 1, parallelism: int = 8) -> FakeCluster:
    return FakeCluster(
        spec(
            stage("mentions", circuits=["llm"], shards=count),
            circuitBreakers={"llm": {"failureThreshold": 2, "recoveryTimeoutSeconds": 5}},
            retry=no_jitter(limit=limit, initial=4),
            parallelism=parallelism,
        )
    )


def test_attribution_compares_the_failure_generation_with_the_circuit() -> None:
    closed = {"llm": CircuitGate("closed", None, generation=2)}
    assert attribute({"llm": 2}, closed) is Verdict.UNDECIDED
    assert attribute({"llm": 1}, closed) is Verdict.OUTAGE  # opened (and closed) since
    assert attribute({"llm": 3}, closed) is Verdict.COUNTS  # the document was reset since
    assert attribute({"other": 2}, closed) is Verdict.COUNTS  # not a circuit of this run
    opened = {"llm": CircuitGate("open", NOW, generation=2)}
    assert attribute({"llm": 2}, opened) is Verdict.OUTAGE


def test_a_failure_that_opened_the_circuit_uses_no_retry_and_says_it_waits() -> None:
    cluster = shards(1, limit=0)
    cluster.step()
    cluster.circuits = {"llm": CircuitGate("open", NOW + timedelta(seconds=5), generation=1)}
    cluster.finish("mentions", 1, message=provider_failure(0))
    plan = cluster.step()
    node = cluster.node("mentions")
    assert node["phase"] == "Blocked"
    assert node["reason"] == "ProviderOutage"
    assert "failures" not in node
    assert node["attempts"] == 1
    assert node["message"].startswith("waiting for the provider")
    assert "ProviderHTTPError: HTTP 503" in node["message"]
    assert "extraction.dev/provider-failures" not in node["message"]
    assert event_reasons(plan) == ["StageBlocked"]
    assert plan.status["phase"] == "Running"


def test_a_provider_failure_while_closed_waits_and_is_excused_if_the_circuit_opens() -> None:
    cluster = shards(1, limit=0)
    cluster.step()
    cluster.circuits = {"llm": CircuitGate("closed", None, generation=0)}
    cluster.finish("mentions", 1, message=provider_failure(0))
    plan = cluster.step()
    node = cluster.node("mentions")
    assert (node["phase"], node.get("failures", 0)) == ("Waiting", 0)
    assert node["providerFailures"] == {"llm": 0}
    assert plan.requeue_after == 4
    assert "no retry used if circuit llm opens first" in plan.status["message"]
    cluster.tick(2)  # another pod's failure opens it before the retry is due
    cluster.circuits = {"llm": CircuitGate("open", NOW + timedelta(seconds=7), generation=1)}
    cluster.step()
    node = cluster.node("mentions")
    assert (node["phase"], node["reason"], node.get("failures", 0)) == (
        "Blocked",
        "ProviderOutage",
        0,
    )
    assert "providerFailures" not in node


def test_a_provider_failure_counts_when_the_circuit_never_opened() -> None:
    cluster = shards(1, limit=0)
    cluster.step()
    cluster.circuits = {"llm": CircuitGate("closed", None, generation=0)}
    cluster.finish("mentions", 1, message=provider_failure(0))
    cluster.step()
    cluster.tick(4)
    plan = cluster.step()
    node = cluster.node("mentions")
    assert (node["phase"], node["failures"]) == ("Failed", 1)
    assert "StageFailed" in event_reasons(plan)
    assert plan.status["phase"] == "Failed"


def test_an_unopened_provider_failure_with_retries_left_relaunches_when_due() -> None:
    cluster = shards(1, limit=2)
    cluster.step()
    cluster.circuits = {"llm": CircuitGate("closed", None, generation=0)}
    cluster.finish("mentions", 1, message=provider_failure(0))
    cluster.step()
    cluster.tick(4)
    plan = cluster.step()
    assert created_nodes(plan) == ["mentions"]
    assert cluster.node("mentions")["failures"] == 1


def test_a_bug_still_uses_a_retry_while_the_circuit_is_open() -> None:
    cluster = shards(1, limit=0)
    cluster.step()
    cluster.circuits = {"llm": CircuitGate("open", NOW + timedelta(seconds=5), generation=1)}
    cluster.finish("mentions", 1, message="KeyError: 'chunk'")
    cluster.step()
    assert cluster.node("mentions")["phase"] == "Failed"


def test_a_recovering_circuit_gets_exactly_one_probe_pod() -> None:
    cluster = shards(4)
    cluster.step()
    assert len(cluster.active()) == 4
    gate = CircuitGate("open", NOW + timedelta(seconds=5), generation=1)
    cluster.circuits = {"llm": gate}
    for index in range(2):
        cluster.finish(f"mentions[{index}]", 1, message=provider_failure(0))
    for index in range(2, 4):
        cluster.finish(f"mentions[{index}]", 75, message="circuit 'llm' is open")
    cluster.step()
    assert all(cluster.node(f"mentions[{i}]")["phase"] == "Blocked" for i in range(4))
    for period in range(10):  # ten recovery periods of outage: one probe each, no retry used
        cluster.tick(5)
        cluster.circuits = {"llm": CircuitGate("half-open", None, generation=1 + 2 * period)}
        plan = cluster.step()
        assert len(plan.create_jobs) == 1, period
        assert "StageProbing" in event_reasons(plan)
        assert cluster.step().create_jobs == []  # the prober is running: nobody else starts
        (prober,) = created_nodes(plan)
        cluster.circuits = {  # its probe failed: open again
            "llm": CircuitGate(
                "open", cluster.now + timedelta(seconds=5), generation=2 + 2 * period
            )
        }
        cluster.finish(prober, 1, message=provider_failure(1 + 2 * period))
        cluster.step()
        assert cluster.node(prober)["phase"] == "Blocked"
    cluster.tick(5)
    cluster.circuits = {"llm": CircuitGate("half-open", None, generation=21)}
    (prober,) = created_nodes(cluster.step())
    cluster.circuits = {"llm": CircuitGate("closed", None, generation=22)}
    plan = cluster.step()
    assert sorted(created_nodes(plan)) == sorted(
        f"mentions[{i}]" for i in range(4) if f"mentions[{i}]" != prober
    )
    for index in range(4):
        cluster.finish(f"mentions[{index}]")
    status = cluster.step().status
    assert status["phase"] == "Succeeded"
    assert all("failures" not in node for node in status["nodes"].values())


def test_a_running_guarded_pod_is_the_prober() -> None:
    cluster = shards(3, parallelism=1)
    cluster.step()  # mentions[0] runs
    cluster.circuits = {"llm": CircuitGate("half-open", None, generation=1)}
    plan = cluster.step()
    assert plan.create_jobs == []
    node = cluster.node("mentions[1]")
    assert node["phase"] == "Blocked"
    assert "mentions[0] probes it" in node["message"]
    assert "nextRetryAt" not in node


def test_the_probe_slot_is_per_circuit() -> None:
    cluster = FakeCluster(
        spec(
            stage("a", circuits=["llm"], shards=2),
            stage("b", circuits=["embed"], shards=2),
            circuitBreakers={"llm": {}, "embed": {}},
        )
    )
    cluster.circuits = {
        "llm": CircuitGate("half-open", None, generation=1),
        "embed": CircuitGate("half-open", None, generation=1),
    }
    assert sorted(created_nodes(cluster.step())) == ["a[0]", "b[0]"]


def test_blocked_nodes_start_as_soon_as_the_circuit_closes() -> None:
    cluster = shards(3, parallelism=1)
    lease = CircuitGate("open", NOW + timedelta(seconds=120), generation=2)  # a probe lease
    cluster.circuits = {"llm": lease}
    cluster.step()
    assert cluster.node("mentions[0]")["nextRetryAt"] == "2026-11-23T12:02:00Z"
    cluster.tick(3)
    cluster.circuits = {"llm": CircuitGate("closed", None, generation=3)}
    assert created_nodes(cluster.step()) == ["mentions[0]"]
