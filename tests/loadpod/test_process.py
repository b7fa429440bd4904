"""`kar98k-loadpod` as a real process: the issue's acceptance check, SIGTERM, refusal to start."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kar98k_loadpod.protocol import STATS_PATH
from kit.counting_server import CountServer
from kit.loadpod import TOKEN, clean_env, client_for, loadpod_command, loadpod_process, plan, target
from kit.wait import wait_until

pytestmark = pytest.mark.slow

RATE = 2000.0
SECRET = "hdr-secret-value-5150"


@pytest.fixture
def pod_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    with loadpod_process(
        KAR98K_TOKEN=TOKEN, KAR98K_POD_NAME="proc-pod", K98_TEST_SECRET=SECRET
    ) as started:
        yield started


async def test_2000_per_second_then_sigterm(
    pod_process: tuple[subprocess.Popen[str], str], count_server: CountServer
) -> None:
    proc, base = pod_process

    async with client_for(base) as pod:

        async def ready() -> bool:  # harnesses wait for /readyz
            status, _ = await pod.call("GET", "/readyz", token=None)
            return bool(status == 200)

        await wait_until(ready, 10.0)
        path = "/acceptance"
        # Uniform arrivals: the acceptance check is per second, and a Poisson count of 2000/s
        # has a standard deviation of sqrt(2000) = 45 = 2.2 %: only uniform pacing can be held
        # to it second by second.
        body = plan(
            [target("t", count_server.url(path), headers={"X-Token": "${K98_TEST_SECRET}"})],
            rate=RATE,
            arrival="uniform",
            lease=2.0,
            max_in_flight=256,
        )
        started = time.time()
        while time.time() - started < 3.6:  # renew the lease as a controller would
            await pod.put_plan(body)
            await asyncio.sleep(0.5)
        ended = time.time()
        await pod.put_plan(body.model_copy(update={"rate": 0.0}))
        stats = await pod.stats()
        assert stats.errors == 0

        per_second: collections.Counter[int] = collections.Counter()
        for bin_, count in (await count_server.bins(path)).items():
            per_second[bin_ // 100] += count
        # Whole wall-clock seconds, after 0.5 s of warm-up and before the rate went to 0.
        steady = sorted(s for s in per_second if s >= started + 0.5 and s + 1 <= ended)
        counts = [per_second[s] for s in steady]
        print(f"server counts per steady second at {RATE:.0f}/s: {counts}")
        assert len(counts) >= 2, (started, ended, sorted(per_second.items()))
        # The product's check is +-2 % per second; on a shared 2-core box a real-time
        # measurement is held to 10 % (a starved second), the exact schedule being proven on a
        # fake clock in test_pacer_schedule.py. It fails, never skips.
        assert all(abs(count - RATE) <= 0.10 * RATE for count in counts), (
            f"per-second counts {counts}, pod late sends {stats.late_sends}"
        )

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    out, err = proc.communicate(timeout=5)
    assert '"drained' in err
    assert TOKEN not in err + out and SECRET not in err + out


def test_refuses_to_start_without_token(tmp_path: Path) -> None:
    cmd = [*loadpod_command(), "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        cmd, check=False, env=clean_env(), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "no token" in done.stderr

    empty = tmp_path / "token"
    empty.write_text("\n")
    for extra in (["--token-file", str(empty)], ["--token-file", str(tmp_path / "missing")]):
        done = subprocess.run(
            cmd + extra, check=False, env=clean_env(), capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2, extra


def test_token_file_and_sigint(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    with loadpod_process("--token-file", str(token_file)) as (proc, url):

        async def stats_status(token: str) -> int:
            async with client_for(url) as pod:
                status, _ = await pod.call("GET", STATS_PATH, token=token)
                return status

        assert asyncio.run(stats_status("file-token")) == 200
        assert asyncio.run(stats_status(TOKEN)) == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
