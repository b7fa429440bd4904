"""Load-pod footprint: memory at idle and under load, and the time from spawn to Ready.

    .venv/bin/python bench/pod_footprint.py                 # starts nginx itself
    .venv/bin/python bench/run_all.py --only pod            # the same, inside the suite

Why: how many pods a node can host is memory (each pod is one Python process) and how fast a
fleet comes up is start-up time. Memory is read from /proc/PID/status (VmRSS, VmHWM) and
/proc/PID/smaps_rollup (PSS: shared library pages split among the processes that map them,
so N pods cost about N × PSS). Start-up is timed from just before the spawn to the first
`/readyz` 200 (the control API answering), over several starts, on the generator core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

from harness import Cores, Pod, http, log, measure, pin_self, print_section, step
from servers import Nginx

LOAD_RATES = (1_000.0, 10_000.0, 30_000.0)
SETTLE_SECONDS = 3.0  # buffers, histograms and connections grow in the first seconds
READY_POLL = 0.005


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and PSS of a process, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return out


def start_to_ready(cores: Cores) -> float:
    """Seconds from spawning a pod to its first `/readyz` 200; the pod is stopped after."""
    started = time.monotonic()
    pod = Pod(cores.generator)
    with pod:  # returns once the pod printed its "listening on" line
        while True:
            try:
                http("GET", pod.base + "/readyz", timeout=1.0)
            except (urllib.error.URLError, OSError):
                if time.monotonic() - started > 60:
                    raise RuntimeError("pod not ready within 60 s") from None
                time.sleep(READY_POLL)
                continue
            return time.monotonic() - started


def startup(cores: Cores, starts: int) -> dict[str, Any]:
    times = [start_to_ready(cores) for _ in range(starts)]
    result = {
        "starts": starts,
        "medianSeconds": round(statistics.median(times), 3),
        "minSeconds": round(min(times), 3),
        "maxSeconds": round(max(times), 3),
        "allSeconds": [round(t, 3) for t in times],
    }
    log(
        f"spawn → ready over {starts} starts: median {result['medianSeconds']} s, "
        f"min {result['minSeconds']} s, max {result['maxSeconds']} s"
    )
    return result


def under_load(cores: Cores, nginx: Nginx, rates: tuple[float, ...]) -> list[dict[str, Any]]:
    """One pod: memory idle, then at each rate after it settled, with the rate it held."""
    targets = [{"name": "nginx", "url": nginx.url}]
    points: list[dict[str, Any]] = []
    with Pod(cores.generator) as pod:
        assert pod.pid is not None
        time.sleep(1.0)
        idle = memory_kib(pod.pid)
        points.append({"rate": 0.0, "memoryKiB": idle})
        log(f"idle: RSS {idle['VmRSS'] / 1024:.1f} MiB, PSS {idle['Pss'] / 1024:.1f} MiB")
        for rate in rates:
            pod.plan(rate, targets, max_in_flight=256, lease=60)
            time.sleep(SETTLE_SECONDS)
            w = measure(pod, rate, 3.0, nginx.count, 1, server_proc=nginx)
            mem = memory_kib(pod.pid)
            points.append({"rate": rate, "memoryKiB": mem, "window": w.to_json(), "held": _held(w)})
            log(
                f"{rate:>7.0f}/s (achieved {w.achieved:.0f}/s, late {w.late_fraction:.2%}): "
                f"RSS {mem['VmRSS'] / 1024:.1f} MiB, PSS {mem['Pss'] / 1024:.1f} MiB, "
                f"peak {mem['VmHWM'] / 1024:.1f} MiB"
            )
        pod.plan(0.0, targets)
    return points


def _held(w: Any) -> bool:
    return bool(w.achieved >= 0.99 * w.planned and w.late_fraction <= 0.01)


def footprint(
    cores: Cores, nginx: Nginx, *, starts: int, rates: tuple[float, ...]
) -> dict[str, Any]:
    """The `pod` section of the suite's JSON."""
    with step(f"load pod start-up, {starts} starts"):
        start = startup(cores, starts)
    with step(f"load pod memory idle and at {[int(r) for r in rates]}/s"):
        load = under_load(cores, nginx, rates)
    return {"startup": start, "memory": load}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cores = Cores.detect()
    pin_self(cores.server)
    with Nginx(cores.server) as nginx:
        section = footprint(cores, nginx, starts=args.starts, rates=LOAD_RATES)
    print_section(section, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
