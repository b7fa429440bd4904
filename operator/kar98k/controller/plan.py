"""What every pod is pushed on one tick: the shared part of the plan, and each pod's own;
and when a pod needs a push at all (`PushPolicy`)."""

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

    def shape(self) -> PlanShape:
        """Everything a pod is told except the epoch and the rate: a change is always pushed."""
        return PlanShape(
            self.lease_seconds, self.max_in_flight, self.arrival, self.targets, self.spike_active
        )

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


@dataclass(frozen=True)
class PlanShape:
    """The part of a plan besides epoch and rate (the run's name and seed never change)."""

    lease_seconds: float
    max_in_flight: int
    arrival: Arrival
    targets: list[Target]
    spike_active: bool


@dataclass(frozen=True)
class PushPolicy:
    """When a tick pushes a pod its plan.

    Why not every tick: each push is an HTTP request and a validated plan on both sides, so a
    fleet of N pods costs 10·N requests per second at 10 Hz even when the curve is flat (it
    usually is, between schedule steps and spikes). A pod is pushed when its share moved by
    more than `tolerance` (relative) since the plan it holds, when anything else in the plan
    changed, or to renew its lease. The rate a pod holds is then never further than
    `tolerance` from its exact share, and equal to it whenever the curve is flat; a share
    going to or from zero is always pushed.

    Renewals: every `renew_after` of the lease (2 s lease: every 0.5 s, leaving three more
    tries before it ends), each pod on its own slot (its place among the serving pods,
    modulo the ticks in that period), so a flat curve spreads the renewals evenly over the
    ticks instead of pushing the whole fleet at once; a pod whose slot is missed (its push
    still pending, say) is renewed at most two ticks after `renew_after` of its lease.
    """

    tolerance: float = 0.005
    renew_after: float = 0.25

    @classmethod
    def every_tick(cls) -> PushPolicy:
        """The old behaviour: every serving pod is pushed on every tick."""
        return cls(tolerance=-1.0, renew_after=0.0)

    def share_moved(self, held: float, share: float) -> bool:
        if (held == 0.0) != (share == 0.0):
            return True
        return abs(share - held) > self.tolerance * max(held, share)

    def renew_due(self, age: float, lease_seconds: float, on_slot: bool, tick: float) -> bool:
        """`age`: since the pod's lease began; `on_slot`: this tick is the pod's renewal slot."""
        period = self.renew_after * lease_seconds
        return (on_slot and age > 1.5 * tick) or age >= period + 1.5 * tick

    def slots(self, lease_seconds: float, tick: float) -> int:
        """Renewal slots: the ticks in one renewal period."""
        return max(1, int(self.renew_after * lease_seconds / tick + 1e-9))


def pod_seed(seed: int, pod: str) -> int:
    """A stable per-pod seed, so pods never share one arrival sequence."""
    digest = hashlib.blake2b(f"{seed}/{pod}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")
