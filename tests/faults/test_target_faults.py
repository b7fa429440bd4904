"""Target-side faults against a real `kar98k-loadpod` process, driven through its control API:
a target that never answers, streams an endless body or endless headers, resets connections,
or fails the TLS handshake (garbage bytes, a certificate the pod does not trust). The check is
`contained.check_fault`; figures are printed (`pytest -s`) and quoted in docs/reliability.md.
"""

from __future__ import annotations

import pytest
import trustme
from faults.contained import check_fault
from faults.faultservers import fault_server
from faults.podwatch import PodProcess
from kit.counting_server import CountServer
from kit.loadpod import Pod
from kit.servers import server_ssl_context

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        ("never-answer", "timeout"),
        ("endless-body", "timeout"),
        ("endless-headers", "error"),
        ("reset", "error"),
        ("tls-garbage", "connect_error"),
    ],
)
async def test_fault_is_counted_and_contained(
    behaviour: str, outcome: str, pod: Pod, loadpod: PodProcess, count_server: CountServer
) -> None:
    async with fault_server(behaviour) as server:
        scheme = "https" if behaviour.startswith("tls") else "http"
        await check_fault(
            pod,
            loadpod,
            count_server,
            fault_url=server.url("/f", scheme),
            expected_outcome=outcome,
            name=behaviour,
        )
        assert server.accepted > 0, "the pod never reached the fault server"


async def test_untrusted_certificate_is_a_connect_error(
    pod: Pod, loadpod: PodProcess, count_server: CountServer
) -> None:
    # A CA the pod was never told about: its verified handshake refuses the certificate.
    stranger = trustme.CA().issue_cert("127.0.0.1")
    async with fault_server("tls-untrusted", ssl_context=server_ssl_context(stranger)) as server:
        await check_fault(
            pod,
            loadpod,
            count_server,
            fault_url=server.url("/f", "https"),
            expected_outcome="connect_error",
            name="tls-untrusted",
        )
        assert server.accepted > 0
