"""Name resolution failing, through a resolver the test controls.

The pod runs in a private mount namespace where /etc/resolv.conf names a tiny DNS server the
test starts on a loopback address (port 53: resolv.conf has no port field). The fault target is
a name (`*.faults.test`, in no hosts file); the healthy target is an IP literal, which needs
no lookup. The resolver answers SERVFAIL, NXDOMAIN, or never.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from faults.contained import check_fault
from faults.faultservers import DnsMode, resolver
from faults.podwatch import pod_process, ready_client
from kit.counting_server import CountServer

pytestmark = pytest.mark.slow

RESOLVER_TIMEOUT_S = 1
"""glibc's per-query timeout in the pod's resolv.conf (one attempt)."""


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        ("servfail", "connect_error"),
        ("nxdomain", "connect_error"),
        # No answer: glibc waits RESOLVER_TIMEOUT_S, longer than the target's 0.5 s timeout.
        ("never", "timeout"),
    ],
)
async def test_resolution_failure_is_counted_and_contained(
    mode: DnsMode, outcome: str, count_server: CountServer, tmp_path: Path
) -> None:
    # A loopback address of its own per run, so parallel runs never share port 53.
    address = f"127.53.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {address}\noptions timeout:{RESOLVER_TIMEOUT_S} attempts:1\n")
    async with resolver(address, mode) as dns:
        with pod_process(tmp_path, resolv_conf=conf) as loadpod:
            async for pod in ready_client(loadpod):
                await check_fault(
                    pod,
                    loadpod,
                    count_server,
                    fault_url=f"http://{mode}.faults.test:8080/f",
                    expected_outcome=outcome,
                    name=f"dns-{mode}",
                )
        print(f"  resolver saw {dns.queries} queries")
        assert dns.queries > 0, "the pod never asked the test's resolver"
