"""`kar98k run FILE`: the whole load test on this machine, with local load-pod processes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from kar98k_loadpod.durations import parse_duration

from ..local import run_local
from ..spec import ManifestReadError, SpecError, load_manifest
from . import EXIT_USAGE, Subparsers


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return seconds


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


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
    parser.add_argument(
        "--pods",
        type=int,
        default=None,
        help="load-pod processes (default: spec.loadPods sizing, at most 2 per CPU)",
    )
    parser.add_argument(
        "--duration", type=_duration, default=None, help="override spec.duration, e.g. 30s, 5m"
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
    parser.set_defaults(handler=run)


def default_pods(desired: int) -> int:
    return max(1, min(desired, 2 * (os.cpu_count() or 1)))


def run(args: argparse.Namespace) -> int:
    try:
        manifest = load_manifest(args.file)
    except ManifestReadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SpecError as exc:
        for error in exc.errors:
            print(f"{args.file}: {error}", file=sys.stderr)
        return EXIT_USAGE
    spec = manifest.spec
    pods = (
        args.pods
        if args.pods is not None
        else default_pods(spec.load_pods.desired(spec.pattern.ceiling))
    )
    return asyncio.run(
        run_local(
            manifest,
            pods=pods,
            duration=args.duration,
            reports=[Path(p) for p in args.report],
            seed=args.seed,
            live=False if args.no_live else None,
        )
    )
