"""Two load-pod builds side by side at fixed paced rates: CPU per send, late sends, achieved.

    .venv/bin/python bench/ab_pods.py --pod base=/work/main/.venv/bin/kar98k-loadpod \
        --pod new=.venv/bin/kar98k-loadpod --rates 10000,20000 --seconds 3 --rounds 2

Why: a ceiling search takes minutes and swings with the shared machine's stalls, while the
CPU one send costs is what a code change moves. The builds alternate per rate and per round
(A B, then B A) on the same nginx and core, so drift hits both alike; compare ratios only.
`--grpc` runs the same against the gRPC server instead of nginx.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from harness import Cores, Pod, log, measure, pin_self
from servers import GrpcServer, Nginx, build_grpc_server


def run(args: argparse.Namespace) -> None:
    cores = Cores.detect()
    pin_self(cores.server)
    pods = [spec.split("=", 1) for spec in args.pod]
    rates = [float(r) for r in args.rates.split(",")]
    if args.grpc:
        binary, _note = build_grpc_server()
        server: Any = GrpcServer(binary, cores.server)
        overhead = 0
    else:
        server = Nginx(cores.server)
        overhead = 1
    with server:
        if args.grpc:
            targets = [{"name": "grpc", "url": f"grpc://{server.address}", "protocol": "grpc"}]
        else:
            targets = [{"name": "nginx", "url": server.url}]
        for round_no in range(args.rounds):
            order = pods if round_no % 2 == 0 else pods[::-1]
            for name, command in order:
                os.environ["KAR98K_BENCH_LOADPOD"] = command
                with Pod(cores.generator) as pod:
                    for rate in rates:
                        pod.plan(rate, targets)
                        time.sleep(args.settle)
                        w = measure(pod, rate, args.seconds, server.count, overhead)
                        us = 1e6 * w.pod_cpu / max(1.0, w.achieved)
                        log(
                            f"round {round_no} {name:>6} {rate:>7.0f}/s: achieved "
                            f"{w.achieved:>7.0f}/s late {w.late_fraction:6.2%} cpu "
                            f"{w.pod_cpu:4.0%} = {us:5.1f} µs/send others "
                            f"{w.foreign_cpu:4.0%}"
                        )
                    pod.plan(0.0, targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pod", action="append", required=True, help="NAME=COMMAND")
    parser.add_argument("--rates", default="10000,20000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=0.7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grpc", action="store_true")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
