"""spec.safety in `kar98k run`: real load-pod processes against a loopback demo target that
starts failing; the breaker pauses the traffic at the target and resumes it on its own."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from kar98k.demo import DemoHttpServer
from kit.manifests import alive, manifest, pod_pids, write_manifest
from kit.wait import holds_for, wait_until
from test_local_cli import collect_stderr, spawn_run

pytestmark = pytest.mark.slow

SUSTAINED = 2.0
WINDOW = 1.0
STATS = 1.0  # the local runner merges (and judges the breaker) every second
# From the first failing request to the trip: the 1 s window passes 50 % errors within
# WINDOW / 2, the next merge sees it (<= STATS later), the rule must hold SUSTAINED, judged at
# merges (<= one more STATS); plus 1.5 s for a loaded 2-core machine to schedule the pods,
# the controller and the pipe. "Within sustainedFor + one tick" of the first bad merge.
TRIP_WITHIN = WINDOW / 2 + STATS + SUSTAINED + STATS + 1.5


async def test_breaker_pauses_a_failing_target_and_resumes_on_its_own(
    http1_server: DemoHttpServer, tmp_path: Path
) -> None:
    path = write_manifest(
        tmp_path / "lt.yaml",
        manifest(
            http1_server.url + "/flaky",
            duration="18s",
            pattern={"baseTPS": 100},
            safety={
                "errorRateAbove": 0.5,
                "sustainedFor": f"{SUSTAINED:g}s",
                "window": f"{WINDOW:g}s",
                "resumeAfter": "2s",
            },
        ),
    )
    report = tmp_path / "out.json"
    behaviour = http1_server.behaviour
    behaviour.flaky_rate = 0.0
    proc = await spawn_run(
        str(path),
        "--pods",
        "1",
        "--no-live",
        "--report",
        str(report),
        stdout=asyncio.subprocess.PIPE,
    )
    lines, reader = collect_stderr(proc)
    counter = http1_server.counter

    def hits() -> int:
        return counter.count("/flaky")

    def said(text: str) -> bool:
        return any(text in line for line in lines)

    async def settled() -> bool:
        """No request reached the target within 50 ms."""
        before = hits()
        await asyncio.sleep(0.05)
        return hits() == before

    try:
        await wait_until(lambda: hits() > 100, within=20.0, what="traffic at the target")
        behaviour.flaky_rate = 1.0  # the target starts failing every request
        failing_since = time.monotonic()
        await wait_until(
            lambda: said("safety breaker tripped"), within=TRIP_WITHIN, what="breaker trips"
        )
        print(f"tripped {time.monotonic() - failing_since:.2f}s after the target failed")
        assert time.monotonic() - failing_since >= SUSTAINED  # not on the first bad second
        behaviour.flaky_rate = 0.0  # the target recovers; paused, it sees nothing yet
        # Paused: pushes of rate 0 within a tick, in-flight requests end within ms; then the
        # target sees no request while the breaker stays open (~2-3 s: see resumeAfter).
        await wait_until(settled, within=2.0, what="traffic stops")
        stopped_at = hits()
        await holds_for(lambda: hits() == stopped_at, 1.0, what="no traffic while paused")
        await wait_until(
            lambda: said("safety breaker closed"), within=6.0, what="breaker closes by itself"
        )
        await wait_until(lambda: hits() > stopped_at + 50, within=3.0, what="traffic resumes")
        assert proc.stdout is not None
        out = (await asyncio.wait_for(proc.stdout.read(), 30.0)).decode()
        code = await asyncio.wait_for(proc.wait(), 30.0)
        await reader
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = "".join(lines)
    assert code == 0, err
    data = json.loads(report.read_text())
    (trip,) = data["safety_trips"]
    assert trip["rule"] == "ErrorRateAbove" and trip["action"] == "pause"
    assert trip["measured"] > 0.5 and trip["closed_by"] == "clear"
    assert trip["closed_at_s"] - trip["at_s"] >= 2.0  # resumeAfter
    assert "safety breaker tripped at" in out and "(clear)" in out
    assert not any(alive(pid) for pid in pod_pids(err))
