"""`PYTHONPATH=tests .venv/bin/python -m cluster up [--nodes N] [--chart]`: a test cluster by hand.

Starts the real control plane and the node agent (building the binaries first if needed), prints
a kubeconfig path to use with kubectl and helm, and runs until Ctrl-C; everything stops with it.
With --chart the operator is installed from helm/kar98k as the test suite installs it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .harness import running_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--chart", action="store_true", help="helm install the operator too")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--runtime",
        choices=["process", "podman"],
        default="process",
        help="podman: pods whose image podman holds run as containers (see `make images`)",
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kar98k-cluster-"))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with running_cluster(workdir, nodes=args.nodes, runtime=args.runtime) as cluster:
        if args.chart:
            cluster.install_chart()
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"kubectl: {cluster.plane.tool('kubectl')}")
        print(f"pod logs: {workdir / 'agent' / 'pods'}; audit log: {cluster.plane.audit_log}")
        print("Ctrl-C stops the cluster.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
