"""`spec.search` through the operator on the real control plane: the chart's operator runs the
same search engine as `kar98k find-max` against a capacity server this test starts on 127.0.0.1,
and answers in status and in an Event.

Why ±10 % holds: see tests/search/test_find_max_cli.py (same server, same settings, same
thresholds; only the load pods are started by the node agent instead of the CLI).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from conftest import REAL_KUBECONFIG
from kar98k_operator.kube import Kube
from kit.capacity import FAST_SEARCH, SEARCH_THRESHOLDS, capacity_server
from lt_helpers import apply, condition, events_of, manifest, wait_event, wait_phase

pytestmark = pytest.mark.slow

WORKERS, SERVICE_MS = 8, 20  # 400 req/s
SEARCH_WITHIN = 150.0  # pods starting, ≤ 10 steps of ~4 s, the confirmation, the drain


async def served(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        stats = (await client.get(url + "/stats")).json()
    return int(stats["served"]) + int(stats["rejected"])


async def test_spec_search_finds_the_capacity_and_answers_in_status_and_an_event(
    api: Kube, ns: str
) -> None:
    if REAL_KUBECONFIG:
        pytest.fail("this scenario needs the suite's own cluster: its pods reach 127.0.0.1")
    with capacity_server(workers=WORKERS, service_ms=SERVICE_MS) as server:
        url, capacity = server.url, server.capacity
        body = manifest(
            "knee",
            url + "/work",
            pattern={"baseTPS": round(capacity * 0.4), "maxTPS": capacity * 8},
            thresholds=SEARCH_THRESHOLDS,
            loadPods={"replicas": 1, "arrival": "uniform"},
            search=FAST_SEARCH,
        )
        began = time.monotonic()
        await apply(api, ns, body)
        status = await wait_phase(api, ns, "knee", "Succeeded", "Failed", within=SEARCH_WITHIN)
        took = time.monotonic() - began
        search = status.get("search")
        assert status["phase"] == "Succeeded", status
        assert search is not None, status
        found = search["maxSustainableTPS"]
        assert abs(found - capacity) <= 0.1 * capacity, (found, capacity, search["steps"])
        assert search["limitedBy"] == "target" and search["confirmed"] is True
        assert search["lastPassingTPS"] < search["firstFailingTPS"]
        assert search["firstFailure"].startswith(("latency.p99", "error_rate"))
        rates = [step["rate"] for step in search["steps"]]
        assert rates[:2] == [round(capacity * 0.4), round(capacity * 0.4) * 2]
        assert max(rates) <= capacity * 8
        completed = condition(status, "Completed")
        assert completed["reason"] == "CapacityFound"
        event = await wait_event(api, ns, "knee", "SearchResult", within=15)
        assert f"max sustainable {found:.1f}/s" in event["message"]
        reasons = [e["reason"] for e in await events_of(api, ns, "knee")]
        assert reasons.count("SearchStep") == len(rates), reasons
        # No load is left running: the pods were drained and scaled to zero.
        before = await served(url)
        await asyncio.sleep(1.5)  # a measurement window: nothing may arrive during it
        assert await served(url) == before
        print(f"operator search: capacity {capacity:g}/s, found {found:.1f}/s in {took:.1f} s")
