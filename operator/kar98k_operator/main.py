"""`kar98k-operator`: run the LoadTest operator (kopf) cluster-wide or in given namespaces.

The Kubernetes API is found the standard way (in-cluster service account, else KUBECONFIG or
~/.kube/config). Besides kopf's liveness endpoint it serves Prometheus /metrics on its own port.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from . import metrics
from .config import OperatorConfig

# Start times are counted down from here (the year 2286), so earlier starts get higher priorities.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kar98k-operator",
        description="Run kar98k LoadTests (kar98k.dev/v1alpha1) on Kubernetes.",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="serve only this namespace (repeatable; globs allowed); default: cluster-wide",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("KAR98K_LIVENESS", "http://0.0.0.0:8081/healthz"),
        help="liveness endpoint URL (default http://0.0.0.0:8081/healthz; '' disables)",
    )
    parser.add_argument(
        "--metrics-address",
        default=os.environ.get("KAR98K_METRICS_ADDRESS", "0.0.0.0"),
        help="address for /metrics (default 0.0.0.0)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("KAR98K_METRICS_PORT", "9090")),
        help="port for /metrics (default 9090; 0 disables)",
    )
    parser.add_argument(
        "--peering",
        default=os.environ.get("KAR98K_PEERING") or None,
        help="kopf peering name for several operator replicas (default: standalone)",
    )
    parser.add_argument(
        "--peering-priority",
        type=int,
        default=None,
        help="kopf peering priority (default: older replicas first, ties broken at random)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument(
        "--log-format",
        choices=[f.name.lower() for f in kopf.LogFormat],
        default=os.environ.get("KAR98K_LOG_FORMAT", "plain"),
        help="log format (default plain)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        quiet=args.quiet,
        log_format=kopf.LogFormat[args.log_format.upper()],
    )
    # The handlers register themselves with kopf's default registry on import.
    from .handlers import OperatorState  # noqa: PLC0415

    state = OperatorState(
        config=OperatorConfig.from_env(),
        peering=args.peering is not None,
        priority=args.peering_priority,
    )
    if args.metrics_port:
        try:
            metrics.serve(state.book, args.metrics_address, args.metrics_port)
        except OSError as exc:
            logging.getLogger(__name__).error("cannot serve /metrics: %s", exc)
            return 2
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        standalone=args.peering is None,
        peering_name=args.peering,
        memo=kopf.Memo(state=state),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
