"""`kar98k-loadpod` as a real process: the issue's acceptance check, SIGTERM, refusal to start."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from podkit import (
    TOKEN,
    CountServer,
    clean_env,
    loadpod_command,
    passes_once,
    plan,
    read_line,
    target,
)

pytestmark = pytest.mark.slow

RATE = 2000.0
SECRET = "hdr-secret-value-5150"


@pytest.fixture
def pod_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = clean_env(KAR98K_TOKEN=TOKEN, KAR98K_POD_NAME="proc-pod", K98_TEST_SECRET=SECRET)
    proc = subprocess.Popen(
        [*loadpod_command(), "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_line(proc, "listening on ").removeprefix("listening on ")
        yield proc, url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


async def test_2000_per_second_then_sigterm(
    pod_process: tuple[subprocess.Popen[str], str], count_server: CountServer
) -> None:
    proc, base = pod_process
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async with aiohttp.ClientSession(headers=headers) as session:
        deadline = time.monotonic() + 10
        while True:  # harnesses wait for /readyz
            async with session.get(f"{base}/readyz") as resp:
                if resp.status == 200:
                    break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        async def measure(attempt: int) -> str | None:
            path = f"/acceptance-{attempt}"
            # Uniform arrivals: the acceptance check is +-2 % per second, and a Poisson count
            # of 2000/s has a standard deviation of sqrt(2000) = 45 = 2.2 %, so only uniform
            # pacing can be held to it second by second.
            body = plan(
                [target("t", count_server.url(path), headers={"X-Token": "${K98_TEST_SECRET}"})],
                epoch=attempt + 1,
                rate=RATE,
                arrival="uniform",
                lease=2.0,
                max_in_flight=256,
            )
            started = time.time()
            while time.time() - started < 3.6:  # renew the lease as a controller would
                async with session.put(f"{base}/v1/plan", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                await asyncio.sleep(0.5)
            ended = time.time()
            async with session.put(f"{base}/v1/plan", json={**body, "rate": 0}) as resp:
                assert resp.status == 200
            async with session.get(f"{base}/v1/stats") as resp:
                stats = await resp.json()
            assert stats["errors"] == 0

            per_second: collections.Counter[int] = collections.Counter()
            for bin_, count in (await count_server.bins(path)).items():
                per_second[bin_ // 100] += count
            # Whole wall-clock seconds, after 0.5 s of warm-up and before the rate went to 0.
            steady = sorted(s for s in per_second if s >= started + 0.5 and s + 1 <= ended)
            counts = [per_second[s] for s in steady]
            print(f"server counts per steady second at {RATE:.0f}/s: {counts}")
            assert len(counts) >= 2, (started, ended, sorted(per_second.items()))
            if all(abs(count - RATE) <= 0.02 * RATE for count in counts):
                return None
            return f"per-second counts {counts}, pod late sends {stats['lateSends']}"

        await passes_once(measure)

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
    proc = subprocess.Popen(
        [*loadpod_command(), "--listen", "127.0.0.1:0", "--token-file", str(token_file)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = read_line(proc, "listening on ").removeprefix("listening on ")

        async def stats_status(token: str) -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url}/v1/stats", headers={"Authorization": f"Bearer {token}"}) as r,
            ):
                return r.status

        assert asyncio.run(stats_status("file-token")) == 200
        assert asyncio.run(stats_status(TOKEN)) == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        stop(proc)
