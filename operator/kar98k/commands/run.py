"""`kar98k run FILE`: the whole load test on this machine, with local load-pod processes."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from ..local import run_local
from ..spec.model import LoadTestSpec
from . import EXIT_USAGE, Subparsers, _args
from ._manifest import load_or_exit_code

_seed = _args.non_negative_int("a non-negative integer")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a LoadTest on this machine (no cluster)",
        description=(
            "Start N kar98k-loadpod processes on 127.0.0.1, drive them with the LoadTest's "
            "pattern, show live progress and write reports. Exit 0 when thresholds pass (or "
            "none are set), 1 when they fail, 2 for invalid input or a run that could not "
            "start. Ctrl-C drains and still writes the reports; a second Ctrl-C kills the pods."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="LoadTest manifest (YAML)")
    add_local_arguments(parser)
    parser.add_argument(
        "--duration", type=_args.duration, default=None, help="override spec.duration, e.g. 30s, 5m"
    )
    parser.set_defaults(handler=run)


def add_local_arguments(parser: argparse.ArgumentParser) -> None:
    """--pods, --report, --seed and --no-live: what every command running local pods takes."""
    parser.add_argument(
        "--pods",
        type=int,
        default=None,
        help="load-pod processes (default: spec.loadPods sizing, at most 2 per CPU)",
    )
    parser.add_argument(
        "--report",
        action="append",
        default=[],
        metavar="PATH",
        help="write a report; format from the extension (.json, .html, .xml); repeatable",
    )
    parser.add_argument(
        "--seed", type=_seed, default=None, help="seed when spec.pattern.seed is not set"
    )
    parser.add_argument(
        "--no-live", action="store_true", help="log lines instead of the live terminal display"
    )


def pods_of(args: argparse.Namespace, spec: LoadTestSpec) -> int:
    """--pods, else the spec's fleet size, at most 2 per CPU."""
    if args.pods is not None:
        return int(args.pods)
    return default_pods(spec.load_pods.desired(spec.pattern.ceiling))


def default_pods(desired: int) -> int:
    return max(1, min(desired, 2 * (os.cpu_count() or 1)))


def run(args: argparse.Namespace) -> int:
    manifest = load_or_exit_code(args.file, invalid=EXIT_USAGE)
    if isinstance(manifest, int):
        return manifest
    return asyncio.run(
        run_local(
            manifest,
            pods=pods_of(args, manifest.spec),
            duration=args.duration,
            reports=[Path(p) for p in args.report],
            seed=args.seed,
            live=False if args.no_live else None,
        )
    )
