"""Raw wire bodies for tests of bad input: plain dicts, so a test can put anything on the wire.

Well-formed plans are built as `Plan` models (kit.loadpod.plan); these are for what a model would
refuse to build (NaN, booleans, too many targets) and for checking the wire names themselves.
"""

from __future__ import annotations

from typing import Any

from kar98k_loadpod.protocol import PLAN_PATH

from .loadpod import Pod


def plan_body(
    targets: list[dict[str, Any]],
    *,
    epoch: int = 1,
    rate: float = 100.0,
    arrival: str = "uniform",
    lease: float = 10.0,
    max_in_flight: int = 64,
    seed: int | None = 7,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "epoch": epoch,
        "rate": rate,
        "arrival": arrival,
        "leaseSeconds": lease,
        "maxInFlight": max_in_flight,
        "targets": targets,
        "labels": labels or {"loadtest": "lt-test"},
    }
    if seed is not None:
        body["seed"] = seed
    return body


def target_body(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "timeout": "5s", **extra}


async def put_raw_plan(pod: Pod, body: dict[str, Any]) -> dict[str, Any]:
    """PUT a raw plan body that must be accepted; the pod's answer as sent."""
    status, answer = await pod.call("PUT", PLAN_PATH, json=body)
    assert status == 200, answer
    return dict(answer)
