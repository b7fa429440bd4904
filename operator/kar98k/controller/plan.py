"""The plan a pod is pushed each tick (PUT /v1/plan), encoded once per push."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kar98k.spec.model import LoadPods


def encode_plan(
    *,
    loadtest: str,
    pod: str,
    seed: int,
    epoch: int,
    share: float,
    lease_seconds: float,
    load_pods: LoadPods,
    targets: list[dict[str, object]],
    spike_active: bool,
) -> bytes:
    plan: dict[str, Any] = {
        "epoch": epoch,
        "rate": share,
        "leaseSeconds": lease_seconds,
        "maxInFlight": load_pods.max_in_flight,
        "arrival": load_pods.arrival.value,
        "seed": pod_seed(seed, pod),
        "targets": targets,
        "labels": {
            "loadtest": loadtest,
            "pod": pod,
            "spikeActive": "true" if spike_active else "false",
        },
    }
    return json.dumps(plan, separators=(",", ":")).encode()


def pod_seed(seed: int, pod: str) -> int:
    """A stable per-pod seed, so pods never share one arrival sequence."""
    digest = hashlib.blake2b(f"{seed}/{pod}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")
