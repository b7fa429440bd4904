"""Processes, pinning and the load-pod driver shared by the benchmark steps.

Everything here talks to 127.0.0.1 only and every process it starts is stopped by the
context manager that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kar98k_loadpod.client import PodClient, PodEndpoint
from kar98k_loadpod.plan import Arrival, Plan
from kar98k_loadpod.stats import PodStats
from kar98k_loadpod.targets import Target

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("KAR98K_BENCH_CACHE", "/tmp/kar98k-bench"))


@dataclass(frozen=True)
class Cores:
    """The server core and the generator core (None: run unpinned)."""

    server: int | None
    generator: int | None

    @classmethod
    def detect(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[0], cpus[1])

    def describe(self) -> str:
        if self.server is None:
            return "unpinned (fewer than 2 CPUs)"
        return f"server on CPU {self.server}, generator on CPU {self.generator}"


NICE = -15
"""Every benchmark process runs at this niceness (when root may set it), so work from other
processes on a shared machine disturbs the measurement less; the same for every tool."""


def _pin_and_raise(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)


def pin_self(cpu: int | None) -> None:
    _pin_and_raise(cpu)


class Proc:
    """A child process pinned to one CPU; its first stdout line is its 'ready' line."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cpu: int | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready_timeout: float = 20.0,
        wait_ready: bool = True,
        log_name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cpu = cpu
        self.env = env
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.wait_ready = wait_ready
        self.log_path = CACHE / "logs" / f"{log_name or Path(argv[0]).name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""

    def __enter__(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cpu = self.cpu

        def preexec() -> None:
            _pin_and_raise(cpu)

        stderr = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE if self.wait_ready else subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            text=True,
            preexec_fn=preexec,  # noqa: PLW1509 - the harness starts no threads
        )
        stderr.close()
        if self.wait_ready:
            self.ready_line = self._read_ready()
        return self

    def _read_ready(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    return line.strip()
            if self.proc.poll() is not None:
                break
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.argv[0]} did not become ready:\n{tail}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __exit__(self, *_: object) -> None:
        self.stop()


def run_pinned(argv: Sequence[str], *, cpu: int | None, timeout: float) -> str:
    """Run a command to completion on one CPU; its stdout."""

    def preexec() -> None:
        _pin_and_raise(cpu)

    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def http(
    method: str,
    url: str,
    body: object | None = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> bytes:
    assert url.startswith("http://127."), url  # loopback only
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def get_json(url: str, *, token: str | None = None) -> Any:
    return json.loads(http("GET", url, token=token))


def loadpod_argv() -> list[str]:
    override = os.environ.get("KAR98K_BENCH_LOADPOD")  # e.g. a profiler wrapping the pod
    if override:
        return override.split()
    exe = BIN / "kar98k-loadpod"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("kar98k-loadpod")
    if found:
        return [found]
    return [sys.executable, "-m", "kar98k_loadpod.main"]


@dataclass
class Snapshot:
    wall: float
    mono: float
    requests: int
    sent: int
    late: int
    dropped: int
    errors: int
    server: int | None
    per_second: list[tuple[int, int]] = field(default_factory=list)
    core_busy: float = 0.0  # seconds the generator core ran any process (user+nice+system)
    pod_cpu: float = 0.0  # seconds the pod process ran (all its threads)
    server_core_busy: float = 0.0  # the same for the server core
    ours_on_server_core: float = 0.0  # the server process plus this harness


_TICK = os.sysconf("SC_CLK_TCK")


def core_busy_seconds(cpu: int | None) -> float:
    """user+nice+system time of one CPU since boot (interrupts left out)."""
    if cpu is None:
        return 0.0
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith(f"cpu{cpu} "):
                user, nice, system = (int(x) for x in line.split()[1:4])
                return (user + nice + system) / _TICK
    return 0.0


def process_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class Pod:
    """One real `kar98k-loadpod` process driven through the load pod's own client."""

    def __init__(self, cpu: int | None, *, http1_client: str | None = None) -> None:
        self.cpu = cpu
        self.token = secrets.token_hex(16)
        env = dict(os.environ, KAR98K_TOKEN=self.token, KAR98K_POD_NAME="bench")
        if http1_client:
            env["KAR98K_HTTP1_CLIENT"] = http1_client
        self.proc = Proc(
            [*loadpod_argv(), "--listen", "127.0.0.1:0", "--log-level", "warning"],
            cpu=cpu,
            env=env,
            log_name=f"loadpod-{http1_client or 'default'}",
        )
        self.endpoint = PodEndpoint("bench", "", self.token)
        self.epoch = 0
        # The client is async; the benchmark steps are not: one private loop runs its calls.
        self._loop = asyncio.Runner()
        self._client = PodClient()

    @property
    def base(self) -> str:
        return self.endpoint.base_url

    def __enter__(self) -> Pod:
        self.proc.__enter__()
        # "listening on http://127.0.0.1:PORT"
        base = self.proc.ready_line.split()[-1]
        assert base.startswith("http://127."), base  # loopback only
        self.endpoint = PodEndpoint("bench", base, self.token)
        self._loop.run(self._client.__aenter__())
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            self.plan(0.0, [])
        self.proc.stop()
        self._loop.run(self._client.close())
        self._loop.close()

    def plan(
        self,
        rate: float,
        targets: list[dict[str, Any]],
        *,
        arrival: str = "uniform",
        max_in_flight: int = 256,
        lease: float = 30.0,
        seed: int | None = 1,
    ) -> float:
        """Push a plan; returns time.monotonic() just before the request was sent."""
        self.epoch += 1
        plan = Plan(
            epoch=self.epoch,
            rate=rate,
            lease_seconds=lease,
            max_in_flight=max_in_flight,
            arrival=Arrival(arrival),
            seed=seed,
            targets=[Target.model_validate(t) for t in targets],
            labels={"loadtest": "bench"},
        )
        sent_at = time.monotonic()
        self._loop.run(self._client.push_plan(self.endpoint, plan, within=10.0))
        return sent_at

    @property
    def pid(self) -> int | None:
        return self.proc.proc.pid if self.proc.proc is not None else None

    def stats(self) -> PodStats:
        """The pod's stats, read through the same client and wire model the controller uses."""
        return self._loop.run(self._client.stats(self.endpoint, within=10.0))


def snapshot(pod: Pod, server_count: Any | None, server_proc: Proc | None = None) -> Snapshot:
    """Pod counters and the server's own count, read back to back, with CPU accounting."""
    server = server_count() if server_count is not None else None
    wall, mono = time.time(), time.monotonic()
    busy, pod_cpu = core_busy_seconds(pod.cpu), process_cpu_seconds(pod.pid)
    server_busy = ours = 0.0
    if server_proc is not None and server_proc.proc is not None:
        server_busy = core_busy_seconds(server_proc.cpu)
        own = os.times()
        ours = process_cpu_seconds(server_proc.proc.pid) + own.user + own.system
    stats = pod.stats()
    per_second = list(stats.sent_per_second)
    return Snapshot(
        wall=wall,
        mono=mono,
        requests=stats.requests,
        sent=sum(c for _, c in per_second),
        late=stats.late_sends,
        dropped=stats.dropped,
        errors=stats.errors,
        server=server,
        per_second=per_second,
        core_busy=busy,
        pod_cpu=pod_cpu,
        server_core_busy=server_busy,
        ours_on_server_core=ours,
    )


@dataclass
class Window:
    """What happened between two snapshots."""

    planned: float
    seconds: float
    server_rate: float | None
    pod_rate: float  # completed requests per second (pod's own count)
    started_rate: float | None  # sends started per second, whole seconds (sentPerSecond)
    late: int
    dropped: int
    errors: int
    sends: int
    pod_cpu: float = 0.0  # share of one core the pod used
    foreign_cpu: float = 0.0  # share of the generator core other processes used
    foreign_server_cpu: float = 0.0  # share of the server core other processes used

    @property
    def disturbed(self) -> float:
        """The larger share of either core that processes not ours took."""
        return max(self.foreign_cpu, self.foreign_server_cpu)

    @property
    def achieved(self) -> float:
        """The rate that reached the server when it counts, else the pod's."""
        return self.server_rate if self.server_rate is not None else self.pod_rate

    @property
    def late_fraction(self) -> float:
        """Late sends (dropped ones included, as the pod counts them) per planned send."""
        return self.late / max(1.0, self.planned * self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "seconds": round(self.seconds, 3),
            "serverRate": _round(self.server_rate),
            "podRate": _round(self.pod_rate),
            "startedRate": _round(self.started_rate),
            "achievedRatio": round(self.achieved / self.planned, 5) if self.planned else None,
            "late": self.late,
            "dropped": self.dropped,
            "errors": self.errors,
            "lateFraction": round(self.late_fraction, 5),
            "podCpu": round(self.pod_cpu, 3),
            "foreignCpu": round(self.foreign_cpu, 3),
            "foreignServerCpu": round(self.foreign_server_cpu, 3),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def window(planned: float, a: Snapshot, b: Snapshot, *, server_overhead: int = 0) -> Window:
    seconds = b.mono - a.mono
    server_rate = None
    if a.server is not None and b.server is not None:
        server_rate = (b.server - a.server - server_overhead) / seconds
    # Whole seconds that lie entirely inside the window, from the pod's own history.
    first, last = int(a.wall) + 1, int(b.wall) - 1
    counts = [c for s, c in b.per_second if first <= s <= last]
    started = sum(counts) / len(counts) if counts else None
    requests = b.requests - a.requests
    return Window(
        planned=planned,
        seconds=seconds,
        server_rate=server_rate,
        pod_rate=requests / seconds,
        started_rate=started,
        late=b.late - a.late,
        dropped=b.dropped - a.dropped,
        errors=b.errors - a.errors,
        sends=max(requests, 1),
        pod_cpu=(b.pod_cpu - a.pod_cpu) / seconds,
        foreign_cpu=max(0.0, (b.core_busy - a.core_busy) - (b.pod_cpu - a.pod_cpu)) / seconds,
        foreign_server_cpu=max(
            0.0,
            (b.server_core_busy - a.server_core_busy)
            - (b.ours_on_server_core - a.ours_on_server_core),
        )
        / seconds,
    )


def measure(
    pod: Pod,
    planned: float,
    seconds: float,
    server_count: Any | None,
    overhead: int = 0,
    *,
    server_proc: Proc | None = None,
) -> Window:
    a = snapshot(pod, server_count, server_proc)
    time.sleep(seconds)
    b = snapshot(pod, server_count, server_proc)
    return window(planned, a, b, server_overhead=overhead)


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    print(f"▶ {title}", file=sys.stderr, flush=True)
    start = time.monotonic()
    yield
    print(f"  done in {time.monotonic() - start:.1f}s", file=sys.stderr, flush=True)


def print_section(section: dict[str, Any], out: Path | None) -> None:
    """A stand-alone bench script's result: JSON on stdout, and in `out` when given."""
    text = json.dumps(section, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    print(text)
