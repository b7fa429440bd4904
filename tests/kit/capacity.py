"""The capacity demo server (`python -m kar98k.demo.serve_capacity`) as a process of its own,
for tests that drive it hard (its event loop never shares time with the test's controller),
and the short search settings the find-max tests use (CLI and operator alike)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

START_WITHIN = 20.0
# A short search for tests: 1 s settle, 2 s windows, a 4 s confirmation, 10 % resolution.
# Why it finds a capacity server's capacity within 10 %: tests/search/test_find_max_cli.py.
FAST_SEARCH = {
    "growth": 2,
    "resolution": 0.1,
    "settle": "1s",
    "window": "2s",
    "confirmWindow": "4s",
    "cooldown": "1s",
    "maxSteps": 10,
}
SEARCH_THRESHOLDS = {"latency": {"p99": "250ms"}, "errorRate": 0.01}


@dataclass(frozen=True)
class CapacityProcess:
    url: str
    capacity: float
    process: subprocess.Popen[str]


@contextlib.contextmanager
def capacity_server(
    *, workers: int, service_ms: float, max_queue: int | None = None
) -> Iterator[CapacityProcess]:
    """Start the capacity server process on 127.0.0.1; stop it (stdin closed) afterwards."""
    argv = [
        sys.executable,
        "-m",
        "kar98k.demo.serve_capacity",
        "--workers",
        str(workers),
        "--service-time",
        f"{service_ms}ms",
    ]
    if max_queue is not None:
        argv += ["--max-queue", str(max_queue)]
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its port first, then serves
        if not line:
            raise AssertionError(f"capacity server did not start (exit {process.wait(5)})")
        hello = json.loads(line)
        yield CapacityProcess(
            f"http://127.0.0.1:{hello['port']}", float(hello["capacity"]), process
        )
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(START_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
