"""An API server in trouble for a whole run: 10% of the operator's requests fail with 500 or 429
(Retry-After), some status writes and Job creates fail or hang at the emulator, and every watch
stream is dropped every 2 seconds. The 6-stage example still completes correctly, the operator stays
up, and no Job is duplicated."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from faults_kit import assert_clean_success
from faults_proxy import FaultyProxy

import chaos
from conftest import LaunchOperator
from extraction_operator.api.constants import PLURAL

DROP_EVERY_SECONDS = 2.0


def _drop_watches_periodically(cluster: Any, stop: threading.Event, dropped: list[int]) -> None:
    while not stop.wait(DROP_EVERY_SECONDS):
        dropped.append(cluster.api.faults.drop_watches())


def test_example_completes_with_10_percent_failing_requests_and_dropped_watches(
    cluster: Any, launch: LaunchOperator, tmp_path: Path
) -> None:
    faults = cluster.api.faults
    # At the emulator, on writes only the operator makes: status CAS writes and Job creates.
    faults.fail("patch", PLURAL, subresource="status", times=3, status=500)
    faults.throttle("create", "jobs", times=2, retry_after=1)
    # Hung requests: they answer only after 3 s (the operator's own client gives up after 30 s).
    faults.hang("create", "jobs", times=1, seconds=3)
    faults.hang("patch", PLURAL, times=1, seconds=3)
    stop, dropped = threading.Event(), list[int]()
    dropper = threading.Thread(
        target=_drop_watches_periodically, args=(cluster, stop, dropped), daemon=True
    )
    with FaultyProxy(cluster.url, tag="faulty", fail_rate=0.10, seed=10) as proxy:
        operator = launch(kubeconfig=proxy.kubeconfig(tmp_path / "faulty-kubeconfig"))
        chaos.create_example_run(cluster, "troubled")
        dropper.start()
        try:
            audit = assert_clean_success(cluster, "troubled", timeout=150)
        finally:
            stop.set()
            dropper.join()
        assert operator.alive(), operator.logs()[-3000:]
        operator.stop()
        injected = sum(proxy.failed.values())
        total = injected + proxy.forwarded
    assert audit.jobs == 9
    assert proxy.failed[500] > 0, proxy.failed
    assert proxy.failed[429] > 0, proxy.failed
    assert 0.03 < injected / total < 0.2, (injected, total)
    assert sum(dropped) > 0, "no watch stream was ever dropped"
    # The emulator-side faults were all consumed: the operator retried through them.
    assert not [rule for rule in faults.rules if rule.remaining], faults.rules
