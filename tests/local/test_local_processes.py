"""LocalPods: real kar98k-loadpod processes on 127.0.0.1, always cleaned up."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from kar98k.local import processes
from kar98k.local.processes import LocalPods, PodStartError
from kar98k_loadpod.protocol import STATS_PATH
from kit.loadpod import client_for
from kit.manifests import alive
from kit.wait import wait_until

pytestmark = pytest.mark.slow  # real load-pod processes


async def test_start_ready_kill_and_stop() -> None:
    async with LocalPods(2) as pods:
        endpoints = pods.endpoints()
        assert [e.name for e in endpoints] == ["pod-0", "pod-1"]
        assert len({e.base_url for e in endpoints}) == 2
        assert all(e.base_url.startswith("http://127.0.0.1:") for e in endpoints)
        assert len(pods.token) >= 32
        for endpoint in endpoints:
            async with client_for(endpoint.base_url, endpoint.name, pods.token) as pod:
                status, _ = await pod.call("GET", STATS_PATH, token=None)
                assert status == 401  # the token is required
                assert (await pod.stats()).pod == endpoint.name
        pids = [p.pid for p in pods.pods]
        os.kill(pids[1], signal.SIGKILL)
        await wait_until(lambda: len(pods.endpoints()) == 1, 5.0)
        assert pods.endpoints()[0].name == "pod-0"
    assert not any(alive(pid) for pid in pids)
    await pods.stop()  # idempotent


def pods_run_script(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Pods started from now on run this Python script instead of kar98k-loadpod."""
    monkeypatch.setattr(processes, "loadpod_command", lambda: [sys.executable, "-c", script])


async def test_a_pod_that_cannot_start_is_reported_and_nothing_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = "import sys; print('boom: cannot listen', file=sys.stderr); sys.exit(2)"
    pods_run_script(monkeypatch, script)
    pods = LocalPods(2, start_timeout=10.0)
    with pytest.raises(PodStartError, match="boom: cannot listen"):
        async with pods:
            pass
    assert not any(alive(p.pid) for p in pods.pods)


async def test_a_pod_that_hangs_is_killed_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pods_run_script(monkeypatch, script)
    pods = LocalPods(1, start_timeout=0.5)
    with pytest.raises(PodStartError, match="no 'listening' line"):
        await pods.start()
    await pods.stop(grace=0.3)  # ignores SIGTERM: killed after the grace
    assert not alive(pods.pods[0].pid)


async def test_pods_die_with_a_runner_that_is_killed() -> None:
    """Even SIGKILL of the runner leaves no pod behind (PR_SET_PDEATHSIG -> pod drains)."""
    script = (
        "import asyncio, sys\n"
        "from kar98k.local.processes import LocalPods\n"
        "async def main():\n"
        "    pods = LocalPods(2)\n"
        "    await pods.start()\n"
        "    print(' '.join(str(p.pid) for p in pods.pods), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    runner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert runner.stdout is not None
    line = await asyncio.wait_for(runner.stdout.readline(), 30.0)
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    runner.kill()
    await runner.wait()
    await wait_until(lambda: not any(alive(pid) for pid in pids), 10.0)
