"""A real `kar98k-loadpod` process for fault tests, and a window of traffic watched from outside:
its plan renewed as a controller would, its stats, resident memory and open descriptors sampled.

The pod can run in a private mount namespace with its own /etc/resolv.conf bind-mounted over
the machine's (how the node agent gives pods their files), so name resolution goes to a
resolver the test starts. Its stderr goes to a file: a pipe nobody reads would block the pod
once full, which is a fault of the harness, not of the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kar98k_loadpod.plan import Plan
from kar98k_loadpod.stats import PodStats
from kit.loadpod import (
    TOKEN,
    Pod,
    clean_env,
    client_for,
    loadpod_command,
    read_line,
    stop_process,
)
from kit.wait import wait_until

RENEW_S = 0.25
"""How often the plan is pushed again (a controller pushes every 100 ms; the lease is 2 s)."""


@dataclass
class PodProcess:
    proc: subprocess.Popen[str]
    base: str
    stderr: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of `pid`, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def pod_process(workdir: Path, resolv_conf: Path | None = None) -> Iterator[PodProcess]:
    """`kar98k-loadpod` on a free 127.0.0.1 port; with `resolv_conf`, in its own mount
    namespace where that file is /etc/resolv.conf. Killed afterwards."""
    argv = [*loadpod_command(), "--listen", "127.0.0.1:0"]
    if resolv_conf is not None:
        # `unshare` and `sh` both exec: the pid we watch is the pod's own.
        script = 'mount --bind "$1" /etc/resolv.conf; shift; exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh",
                str(resolv_conf), *argv]  # fmt: skip
        if os.geteuid() != 0:
            argv.insert(1, "--map-root-user")
    stderr = workdir / "loadpod.stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            argv,
            env=clean_env(KAR98K_TOKEN=TOKEN, KAR98K_POD_NAME="fault-pod"),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        base = read_line(proc, "listening on ").removeprefix("listening on ")
        yield PodProcess(proc, base, stderr)
    finally:
        stop_process(proc)


async def ready_client(proc: PodProcess) -> AsyncIterator[Pod]:
    async with client_for(proc.base) as pod:

        async def ready() -> bool:
            status, _ = await pod.call("GET", "/readyz", token=None)
            return bool(status == 200)

        await wait_until(ready, 10.0, what="load pod ready")
        yield pod


@dataclass
class Window:
    """What one watched window of traffic measured (wall-clock bounds for server counts)."""

    started: float
    ended: float
    before: PodStats
    after: PodStats
    rss_kib_before: int
    rss_kib_after: int
    fds_before: int
    fds_after: int
    fds_max: int = 0
    in_flight_max: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss KiB, fds)

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def outcomes(self, target: str) -> dict[str, int]:
        """Outcome counts of `target` recorded within the window."""
        old = self.before.targets.get(target)
        new = self.after.targets[target].outcomes
        base = old.outcomes if old is not None else {}
        return {k: v - base.get(k, 0) for k, v in new.items() if v - base.get(k, 0)}

    @property
    def dropped(self) -> int:
        return self.after.dropped - self.before.dropped

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_kib_after - self.rss_kib_before


async def watch(
    pod: Pod, pid: int, body: Plan, *, warmup: float, seconds: float, sample_every: float = 0.0
) -> Window:
    """Run `body` for `warmup` + `seconds`, renewing it; measure over the last `seconds`.

    `sample_every` > 0 also records (time, RSS, fds) that often, for a trend.
    """

    async def run_for(duration: float, window: Window | None) -> None:
        end = time.monotonic() + duration
        next_sample = time.monotonic()
        while time.monotonic() < end:
            await pod.put_plan(body)
            if window is not None:
                stats = await pod.stats()
                fds = open_fds(pid)
                window.in_flight_max = max(window.in_flight_max, stats.in_flight)
                window.fds_max = max(window.fds_max, fds)
                if sample_every > 0 and time.monotonic() >= next_sample:
                    window.samples.append((time.monotonic(), rss_kib(pid), fds))
                    next_sample += sample_every
            await asyncio.sleep(min(RENEW_S, max(0.0, end - time.monotonic())))

    await run_for(warmup, None)
    window = Window(
        started=time.time(),
        ended=0.0,
        before=await pod.stats(),
        after=PodStats(),
        rss_kib_before=rss_kib(pid),
        rss_kib_after=0,
        fds_before=open_fds(pid),
        fds_after=0,
    )
    await run_for(seconds, window)
    window.ended = time.time()
    window.after = await pod.stats()
    window.rss_kib_after = rss_kib(pid)
    window.fds_after = open_fds(pid)
    return window
