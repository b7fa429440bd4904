"""What every pod is pushed on one tick: the shared part of the plan, and each pod's own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kar98k_loadpod.plan import Arrival, Plan
from kar98k_loadpod.targets import Target


@dataclass(frozen=True)
class TickPlan:
    """The plan of one tick before it is split: every pod gets this with its own share."""

    loadtest: str
    seed: int
    epoch: int
    rate: float  # the whole rate, split over the serving pods
    lease_seconds: float
    max_in_flight: int
    arrival: Arrival
    targets: list[Target]
    spike_active: bool

    def for_pod(self, pod: str, share: float) -> Plan:
        """The plan pod `pod` is pushed when it sends `share` of the rate."""
        return Plan(
            epoch=self.epoch,
            rate=share,
            lease_seconds=self.lease_seconds,
            max_in_flight=self.max_in_flight,
            arrival=self.arrival,
            seed=pod_seed(self.seed, pod),
            targets=self.targets,
            labels={
                "loadtest": self.loadtest,
                "pod": pod,
                "spikeActive": "true" if self.spike_active else "false",
            },
        )


def pod_seed(seed: int, pod: str) -> int:
    """A stable per-pod seed, so pods never share one arrival sequence."""
    digest = hashlib.blake2b(f"{seed}/{pod}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")
