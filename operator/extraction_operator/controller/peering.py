"""Is this replica the active one? kopf's peering, read the way kopf reads it.

With `--peering`, kopf pauses a replica that sees a live peer of higher (or equal) priority, but
it pauses only its own watch streams and handlers. The operator's workers, delayed re-queues and
resync are ours, and a paused replica must not run them: it would act on a frozen cache (launch a
retry in a run that was suspended or deleted meanwhile). kopf keeps its pause state private, so
this gate reads the same peering object kopf maintains and applies kopf's rule: a peer is alive
until `lastseen + lifetime`; any live peer other than us with a priority >= ours pauses us.

The gate polls once a second. In the moment between a higher-priority peer appearing and the next
poll both replicas may act; deterministic Job names (409 = adoption) and compare-and-swap status
writes make that harmless, and the fault tests check that no duplicate Job ever results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .rest import ApiError, KubeRest

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def is_active(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule: we act unless a live peer other than us has a priority >= ours."""
    for peer_id, info in peers.items():
        if peer_id == identity or not isinstance(info, Mapping):
            continue
        lastseen = _parse_time(info.get("lastseen"))
        try:
            lifetime = float(info.get("lifetime", 60))
            peer_priority = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if lastseen is None or lastseen.timestamp() + lifetime <= now.timestamp():
            continue  # dead
        if peer_priority >= priority:
            return False
    return True


class PeeringGate:
    """`active` is True when standalone, else follows the peering object."""

    def __init__(
        self,
        rest: KubeRest | None,
        name: str,
        identity: str,
        priority: int,
        clock: Callable[[], datetime],
        on_activated: Callable[[], None] = lambda: None,
    ) -> None:
        self.rest = rest
        self.name = name
        self.identity = identity
        self.priority = priority
        self.clock = clock
        self.on_activated = on_activated
        self.active = rest is None  # standalone: always active
        self.changed = asyncio.Event()

    @property
    def path(self) -> str:
        return f"/apis/kopf.dev/v1/clusterkopfpeerings/{self.name}"

    async def check(self) -> None:
        assert self.rest is not None
        try:
            peering = await self.rest.request("GET", self.path)
        except ApiError as error:
            if error.status == 404 and self.active:
                logger.warning("Peering object %s is missing: pausing until it exists", self.name)
                self._set(False)
            return  # transient trouble: keep the last verdict
        except (TimeoutError, OSError) as error:
            logger.debug("Peering check failed: %s", error)
            return
        status = peering.get("status")
        peers = status if isinstance(status, Mapping) else {}
        self._set(is_active(peers, self.identity, self.priority, self.clock()))

    def _set(self, active: bool) -> None:
        if active == self.active:
            return
        self.active = active
        logger.info("This replica is now %s", "active" if active else "paused (a peer is active)")
        if active:
            self.on_activated()
        self.changed.set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        if self.rest is None:
            return
        while True:
            await self.check()
            await asyncio.sleep(POLL_SECONDS)
