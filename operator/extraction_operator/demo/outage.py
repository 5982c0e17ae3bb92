"""`demo --outage SECONDS`: point the runs at a fake LLM provider that goes down for a while.

The demo starts `examples.provider.FakeProvider` in its own process; its outage begins with the
first extraction call (so however long the cluster took to start, the mentions shards meet it)
and lasts SECONDS. Every run gets `LLM_PROVIDER_URL` in `spec.env`, so its `mentions` stage sends
each chunk through `with circuit("llm")`: the circuit opens after a few failures, the shards wait
as `Blocked`, one pod probes after the recovery time, and the run finishes once the provider is
back. The manifest's 30 s recovery time would make a short outage look like a hang, so the demo's
copy of each run (never the manifest file) waits at most about half the outage before probing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from extraction_operator.api import constants
from extraction_operator.examples.provider_client import ENV_PROVIDER_URL

from .manifests import Manifests

MIN_RECOVERY_SECONDS = 2


def demo_recovery_seconds(configured: int, outage_seconds: float) -> int:
    """A recovery time that shows a probe during the outage without a long idle wait: half the
    outage (at least 2 s), never longer than what the run configured."""
    return max(MIN_RECOVERY_SECONDS, min(configured, math.ceil(outage_seconds / 2)))


def with_provider(manifests: Manifests, provider_url: str, outage_seconds: float) -> Manifests:
    """A copy of `manifests` whose runs call the provider at `provider_url`."""
    objects = [
        _with_provider(obj, provider_url, outage_seconds)
        if obj.get("kind") == constants.KIND
        else obj
        for obj in manifests.objects
    ]
    return Manifests(objects=objects, runs=list(manifests.runs))


def _with_provider(
    run: Mapping[str, Any], provider_url: str, outage_seconds: float
) -> dict[str, Any]:
    changed = copy.deepcopy(dict(run))
    spec = changed.setdefault("spec", {})
    env = [
        item
        for item in spec.get("env") or []
        if not (isinstance(item, Mapping) and item.get("name") == ENV_PROVIDER_URL)
    ]
    env.append({"name": ENV_PROVIDER_URL, "value": provider_url})
    spec["env"] = env
    breakers = spec.get("circuitBreakers")
    if isinstance(breakers, dict):
        for config in breakers.values():
            if isinstance(config, dict):
                configured = config.get("recoveryTimeoutSeconds", 30)
                if isinstance(configured, int) and not isinstance(configured, bool):
                    config["recoveryTimeoutSeconds"] = demo_recovery_seconds(
                        configured, outage_seconds
                    )
    return changed


def provider_note(stats: Mapping[str, Any]) -> str:
    """One line for the end of the demo: what reached the provider."""
    total, failed = stats.get("total_calls", 0), stats.get("failed_calls", 0)
    return (
        f"Fake LLM provider: {total} call(s) reached it, {failed} of them failed during the outage."
    )
