"""SIGTERM while the example runs: the operator exits within the grace period (well under the
30 s a pod gets by default), and a new operator carries the run to success without damage."""

from __future__ import annotations

import time
from typing import Any

from faults_kit import assert_clean_success

import chaos
from conftest import LaunchOperator

GRACE_SECONDS = 15.0


def test_sigterm_stops_in_time_and_the_run_continues(cluster: Any, launch: LaunchOperator) -> None:
    operator = launch()
    chaos.create_example_run(cluster, "graceful")
    assert chaos.wait_first_write(cluster, time.time() - 60, ["graceful"], timeout=30) is not None
    time.sleep(0.5)
    assert chaos.phase_of(cluster.url, "graceful") not in chaos.TERMINAL, "run ended too soon"
    asked = time.monotonic()
    code = operator.stop(timeout=GRACE_SECONDS)
    took = time.monotonic() - asked
    print(f"SIGTERM: exited after {took:.2f}s")
    assert took < GRACE_SECONDS, f"SIGTERM took {took:.1f}s"
    assert code == 0, f"exit code {code}:\n{operator.logs()[-3000:]}"
    stopped = time.time()

    launch(label="restarted")
    audit = assert_clean_success(cluster, "graceful")
    assert audit.jobs == 9
    assert chaos.first_write_after(cluster, stopped, ["graceful"]) is not None
