"""A never-answering target that wants more than maxInFlight: in-flight stays at the cap, the
excess is dropped (after a line of about one second of arrivals), memory and descriptors stay
flat. maxInFlight is one budget for the whole pod, so a healthy target in the same plan is
starved too: the figure is printed and documented (docs/reliability.md), the bound asserted.
"""

from __future__ import annotations

import pytest
from faults.contained import FD_SLACK, RSS_GROWTH_LIMIT_KIB
from faults.faultservers import fault_server
from faults.podwatch import PodProcess, open_fds, watch
from kit.counting_server import CountServer
from kit.loadpod import Pod, plan, target

pytestmark = pytest.mark.slow

RATE = 1000.0
CAP = 16
TIMEOUT_S = 1.0
WARMUP_S, WINDOW_S = 2.0, 4.0


async def test_in_flight_capped_excess_dropped_memory_flat(
    pod: Pod, loadpod: PodProcess, count_server: CountServer
) -> None:
    idle_fds = open_fds(loadpod.pid)
    path = "/healthy-saturated"
    async with fault_server("never-answer") as server:
        body = plan(
            [
                target("healthy", count_server.url(path)),
                target("fault", server.url("/f"), timeout=f"{TIMEOUT_S}s"),
            ],
            rate=RATE,
            arrival="uniform",
            lease=2.0,
            max_in_flight=CAP,
        )
        window = await watch(pod, loadpod.pid, body, warmup=WARMUP_S, seconds=WINDOW_S)
    healthy = await count_server.count(path, window.started, window.ended)
    offered = RATE * window.seconds
    print(
        f"\nsaturated: offered {offered:.0f}, dropped {window.dropped} "
        f"({window.dropped / offered:.3f}), in-flight max {window.in_flight_max} (cap {CAP}), "
        f"fault outcomes {window.outcomes('fault')}, healthy reached its server {healthy} times "
        f"of {offered / 2:.0f} asked ({healthy / (offered / 2):.3f})\n"
        f"  rss {window.rss_kib_before} -> {window.rss_kib_after} KiB "
        f"({window.rss_growth_kib:+d}), fds {window.fds_before} -> {window.fds_after} "
        f"(max {window.fds_max}, idle {idle_fds})"
    )
    assert window.in_flight_max == CAP, "the cap was never reached (or was exceeded)"
    # Each of the CAP slots is held TIMEOUT_S by every fault send it takes; the waiting line
    # is first in, first out, so a slot gets through about one healthy and one fault send per
    # second: ~2 * CAP = 32 of the 1000 sends a second, the rest (~97 %) dropped. 80 % leaves
    # room for a slow machine; a pod that queued instead of dropping would drop none.
    assert window.dropped >= 0.8 * offered, (window.dropped, offered)
    assert set(window.outcomes("fault")) == {"timeout"}
    # Queued instead of dropped, ~4000 sends would be held over the window (a task and a
    # coroutine frame, kilobytes each): several MiB. Dropped, memory stays within noise.
    assert window.rss_growth_kib <= RSS_GROWTH_LIMIT_KIB, window.rss_growth_kib
    assert window.fds_max <= idle_fds + CAP + FD_SLACK, (window.fds_max, idle_fds)
