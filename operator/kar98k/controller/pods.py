"""Who the controller's pods are. Talking to them is the load pod's own client's job.

`PodEndpoint`, `PodClient` and `PodCallError` live in `kar98k_loadpod.client`, next to the
wire models, so the control API is written down once; they are re-exported here for callers
that only know the controller.
"""

from __future__ import annotations

from typing import Protocol

from kar98k_loadpod.client import PUSH_TIMEOUT, STATS_TIMEOUT, PodCallError, PodClient, PodEndpoint
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.protocol import PlanAck
from kar98k_loadpod.stats import PodStats

__all__ = [
    "PUSH_TIMEOUT",
    "STATS_TIMEOUT",
    "PodApi",
    "PodCallError",
    "PodClient",
    "PodEndpoint",
    "PodSource",
]


class PodSource(Protocol):
    """Where the controller learns which pods exist; asked once per tick, so keep it cheap."""

    def endpoints(self) -> list[PodEndpoint]: ...  # pods believed ready right now


class PodApi(Protocol):
    """The three calls the controller makes; `PodClient` is the real one (tests may pass their
    own, e.g. in-memory pods on a fake clock). Every failure is a PodCallError."""

    async def push_plan(
        self, pod: PodEndpoint, plan: Plan, within: float = PUSH_TIMEOUT
    ) -> PlanAck: ...

    async def stats(self, pod: PodEndpoint, within: float = STATS_TIMEOUT) -> PodStats: ...

    async def drain(self, pod: PodEndpoint, timeout_seconds: float) -> PodStats: ...
