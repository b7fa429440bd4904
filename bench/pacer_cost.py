"""CPU per paced send inside one process: pacer + recorder + one executor, nothing else.

    python bench/pacer_cost.py --url http://127.0.0.1:PORT/ --rate 10000 --seconds 3
    python bench/pacer_cost.py ... --profile      # cProfile: Python calls per send, top costs

Why: the pod's own CPU share moves with every other process on a shared machine; the CPU
this process spends per send (process_time, min over repeats) and the number of Python
calls per send (deterministic) move only with the code. Run it with another checkout's
interpreter (e.g. /work/main/.venv/bin/python) for the side-by-side "before".
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import time

import uvloop
from kar98k_loadpod.executors import make_executor
from kar98k_loadpod.pacer import Pacer, Slot
from kar98k_loadpod.plan import Arrival
from kar98k_loadpod.recorder import Recorder
from kar98k_loadpod.targets import Target


async def one_window(
    target: Target, rate: float, seconds: float, max_in_flight: int
) -> tuple[int, float, int, float]:
    rec = Recorder()
    pacer = Pacer(rec)
    executor = make_executor(target, max_in_flight)
    pacer.start()
    pacer.configure(
        rate=rate,
        arrival=Arrival.UNIFORM,
        seed=1,
        max_in_flight=max_in_flight,
        slots=[Slot(target.name, executor, 1.0, rec.target(target.name))],
        lease_seconds=seconds + 60,
    )
    await asyncio.sleep(0.5)  # connections open, caches warm
    before, cpu0, sys0 = rec.requests, time.process_time(), os.times().system
    thread0 = time.thread_time()
    late0 = rec.late
    await asyncio.sleep(seconds)
    done, cpu = rec.requests - before, time.process_time() - cpu0
    system = os.times().system - sys0
    print(f"loop thread: {1e6 * (time.thread_time() - thread0) / max(1, done):.2f} us/send")
    late = rec.late - late0
    if rec.errors:
        print("errors:", rec.targets[target.name].outcomes)
    await pacer.close()
    return done, cpu, late, system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--protocol", default="http")
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    assert "//127." in args.url or "//[::1]" in args.url, "loopback targets only"
    target = Target.model_validate({"name": "t", "url": args.url, "protocol": args.protocol})
    costs: list[float] = []
    lates: list[int] = []
    system: list[float] = []
    profile = cProfile.Profile() if args.profile else None
    for _ in range(args.repeats):
        if profile is not None:
            profile.enable()
        done, cpu, late, sys_s = uvloop.run(
            one_window(target, args.rate, args.seconds, args.max_in_flight)
        )
        system.append(1e6 * sys_s / max(1, done))
        if profile is not None:
            profile.disable()
        costs.append(1e6 * cpu / max(1, done))
        lates.append(late)
    out: dict[str, object] = {
        "rate": args.rate,
        "usPerSendMin": round(min(costs), 2),
        "usPerSend": [round(c, 2) for c in costs],
        "kernelUsPerSend": [round(c, 2) for c in system],
        "late": lates,
    }
    if profile is not None:
        stats = pstats.Stats(profile)
        calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
        sends = args.rate * (args.seconds + 0.5) * args.repeats
        out["pythonCallsPerSend"] = round(calls / sends, 1)
        stats.sort_stats("tottime").print_stats(18)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
