"""The check every target-side fault test makes: one misbehaving target and one healthy target
(the counting server, its own process) in the same plan, a window of traffic watched from
outside a real load-pod process:

- the fault target's outcomes carry the right name (and only that name), at its share;
- the healthy target still gets its share, counted at its server;
- the pod's resident memory (VmRSS) and open descriptors stay bounded over the window;
- in-flight sends never exceed maxInFlight.
"""

from __future__ import annotations

import math

from faults.podwatch import PodProcess, Window, open_fds, watch
from kar98k_loadpod.plan import Plan
from kit.counting_server import CountServer
from kit.loadpod import Pod, plan, target

RATE = 200.0
"""Sends per second for the whole pod, uniform arrivals."""
HEALTHY_WEIGHT, FAULT_WEIGHT = 3.0, 1.0
FAULT_TIMEOUT_S = 0.5
MAX_IN_FLIGHT = 64
WARMUP_S, WINDOW_S = 1.5, 4.0
RSS_GROWTH_LIMIT_KIB = 4096
"""Resident memory may grow by at most this much over a window (see `assert_bounded`)."""
FD_SLACK = 8
"""Descriptors above the idle pod's count beyond its connections (see `assert_bounded`)."""


def share_tolerance(expected: float, p: float) -> float:
    """Relative tolerance on a target's server-side count over a window.

    Each send picks the healthy target with probability p (a seeded weighted draw), so its
    count over N = expected / p sends is Binomial(N, p): sd = sqrt(N p (1 - p)). Four sd keep
    a healthy pod's false-failure rate below 1e-4; 2 % more covers the window's edges (sends
    in flight as it opens or closes, 10 ms server bins). A starved target (the failure this
    guards against) misses by far more.
    """
    n = expected / p
    return 4 * math.sqrt(n * p * (1 - p)) / expected + 0.02


def mixed_plan(fault_url: str, healthy_url: str, **fault_fields: object) -> Plan:
    return plan(
        [
            target("healthy", healthy_url, weight=HEALTHY_WEIGHT),
            target(
                "fault", fault_url, weight=FAULT_WEIGHT, timeout=f"{FAULT_TIMEOUT_S}s",
                **fault_fields,
            ),
        ],
        rate=RATE,
        arrival="uniform",
        lease=2.0,
        max_in_flight=MAX_IN_FLIGHT,
    )  # fmt: skip


async def healthy_share(window: Window, server: CountServer, path: str) -> tuple[int, float]:
    """(count at the server, expected count) for the healthy target over the window."""
    got = await server.count(path, window.started, window.ended)
    p = HEALTHY_WEIGHT / (HEALTHY_WEIGHT + FAULT_WEIGHT)
    return got, RATE * p * window.seconds


def assert_bounded(window: Window, idle_fds: int) -> None:
    """Memory and descriptors stay bounded while the fault goes on.

    RSS: the window runs ~WINDOW_S * RATE / 4 = 200 failing sends; anything kept per failed
    send (a task, a buffer, a queued connection attempt: kilobytes each) grows with it, and
    the endless streams push megabytes per second at the pod. A bounded pod moves by the
    allocator's noise (a few hundred KiB); 4 MiB sits between the two.
    Descriptors: at most one connection per in-flight send plus the two probe connections,
    over the idle pod's own; a leak of one per failed send exceeds that within the window.
    """
    print(
        f"  rss {window.rss_kib_before} -> {window.rss_kib_after} KiB "
        f"({window.rss_growth_kib:+d}), fds {window.fds_before} -> {window.fds_after} "
        f"(max {window.fds_max}, idle {idle_fds}), in-flight max {window.in_flight_max}"
    )
    assert window.rss_growth_kib <= RSS_GROWTH_LIMIT_KIB, window.rss_growth_kib
    assert window.fds_max <= idle_fds + MAX_IN_FLIGHT + FD_SLACK, (window.fds_max, idle_fds)
    assert window.fds_after <= window.fds_before + MAX_IN_FLIGHT, (
        window.fds_before,
        window.fds_after,
    )
    assert window.in_flight_max <= MAX_IN_FLIGHT


async def check_fault(
    pod: Pod,
    loadpod: PodProcess,
    count_server: CountServer,
    *,
    fault_url: str,
    expected_outcome: str,
    name: str,
    **fault_fields: object,
) -> Window:
    idle_fds = open_fds(loadpod.pid)
    path = f"/healthy-{name}"
    body = mixed_plan(fault_url, count_server.url(path), **fault_fields)
    window = await watch(pod, loadpod.pid, body, warmup=WARMUP_S, seconds=WINDOW_S)
    outcomes = window.outcomes("fault")
    got, expected = await healthy_share(window, count_server, path)
    tolerance = share_tolerance(expected, HEALTHY_WEIGHT / (HEALTHY_WEIGHT + FAULT_WEIGHT))
    print(
        f"\n{name}: fault outcomes {outcomes}; healthy {got} at the server, expected "
        f"{expected:.0f} ({got / expected:.3f}, tolerance {tolerance:.3f}); "
        f"healthy outcomes {window.outcomes('healthy')}; dropped {window.dropped}"
    )
    assert_bounded(window, idle_fds)
    assert set(outcomes) == {expected_outcome}, outcomes
    # Every fault send fails, at the fault target's share of the rate (its completions lag
    # its sends by at most the timeout, so the count is that share minus up to one timeout's).
    fault_expected = RATE * FAULT_WEIGHT / (HEALTHY_WEIGHT + FAULT_WEIGHT) * window.seconds
    assert outcomes[expected_outcome] >= 0.75 * fault_expected, (outcomes, fault_expected)
    assert abs(got - expected) <= tolerance * expected, (got, expected, tolerance)
    assert window.outcomes("healthy") == {"2xx": window.outcomes("healthy").get("2xx", 0)}
    return window
