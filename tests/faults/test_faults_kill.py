"""SIGKILL at random moments during the 6-stage example (a 3-shard fan-out and a stage that fails
its first attempt): every run still ends Succeeded, with exactly one Job per (node, attempt),
status attempts adding up to the Jobs that exist, and no node left unfinished."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from faults_kit import REPO

import chaos
from conftest import LaunchOperator


def _assert_survived(result: chaos.ChaosResult, kills: int) -> None:
    assert result.kills == kills
    assert result.unrecovered == 0, "a restarted operator never wrote to the run again"
    assert result.audits, "no run was audited"
    for audit in result.audits:
        assert audit.ok, audit.describe()


def test_sigkill_at_random_moments_during_the_example(cluster: Any, launch: LaunchOperator) -> None:
    operator = launch()
    result = chaos.run_chaos(cluster, operator, kills=3, seed=6, max_runs=3, finish_timeout=90)
    _assert_survived(result, kills=3)
    # The flaky stage really retried and the fan-out really fanned out, under the kills.
    for run in result.runs:
        nodes = chaos.get_run(cluster.url, run)["status"]["nodes"]
        assert nodes["entities"]["attempts"] == 2
        assert {"mentions[0]", "mentions[1]", "mentions[2]"} <= set(nodes)
    assert operator.alive()
    # A restarted operator announces that it picked up a run the dead one was driving.
    assert result.takeover_events >= 1


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(10))
def test_sigkill_soak_with_ten_seeds(cluster: Any, launch: LaunchOperator, seed: int) -> None:
    operator = launch()
    result = chaos.run_chaos(
        cluster, operator, kills=4, seed=1000 + seed, concurrency=2, finish_timeout=180
    )
    _assert_survived(result, kills=4)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_chaos_benchmark_with_200_kills(tmp_path: Any) -> None:
    """`make soak` runs the chaos benchmark itself with 200 kills."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "chaos.py"), "--kills", "200", "--seed", "7",
         "--concurrency", "2", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=3500, check=False,
    )  # fmt: skip
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(done.stdout, done.stderr[-3000:])
    assert summary["kills"] == 200
    assert summary["duplicate_jobs"] == 0
    assert summary["stuck_runs"] == 0
    assert summary["succeeded"] == summary["runs"]
    assert done.returncode == 0
